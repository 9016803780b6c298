"""What every command shares: the study arguments, loading a study, the result console."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from hpsearch.errors import HpsearchError

if TYPE_CHECKING:
    from hpsearch.spec import Study

#: A command's handler: the parsed arguments and the console for progress -> exit status.
Handler = Callable[[argparse.Namespace, Console], int]


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave what the command has loaded so far out of the garbage collections in the body.

    By the time ``hpsearch run`` opens its storage it holds Optuna, NumPy, h5py, pydantic and
    the study (some 200k objects); every full collection after that walked them all again,
    and the imports still to come (SQLAlchemy, Ray, plotly for the report) set off three,
    0.36 s of a no-op study's run (`benchmarks/trial_overhead.py`) against 0.08 s in a bare
    Ray Tune script. Frozen, those collections walk only what is new (0.14 s). Reference
    counting still frees frozen objects at once; only those caught in reference cycles wait
    for the body to end, a bounded cost, as they are what the command loaded to run. Unfrozen
    at the end, so that a process that goes on (tests, programs calling
    :func:`hpsearch.cli.main`) collects as before.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def study_arguments(parser: argparse.ArgumentParser) -> None:
    """The study file, ``--set`` overrides and ``--storage``, as every study command takes them."""
    parser.add_argument("study", type=Path, help="study file, e.g. studies/xgamma_resnet.yaml")
    overrides_argument(parser, "override a study field, e.g. --set budget.trials=4 (repeatable)")
    parser.add_argument("--storage", help="Optuna storage URL (overrides the study's)")


def overrides_argument(parser: argparse.ArgumentParser, text: str) -> None:
    """``--set KEY=VALUE``, repeatable, into ``args.overrides`` (as ``load_study`` takes them).

    One definition, so that every command (and the benchmarks) spells overrides the same way.
    """
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=text
    )


def debug_argument(parser: argparse.ArgumentParser) -> None:
    """``--debug``: also show the traceback of an error told in one line (see :func:`traced`)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print its traceback too (for a bug report)",
    )


def traced(handler: Handler) -> Handler:
    """``handler``, printing the traceback of an hpsearch error first when ``--debug`` is given.

    A user's mistake is told in one line that names the file, the key and the fix; the
    traceback would only bury it. When the line itself looks wrong (a check that misfires),
    ``--debug`` shows where it was raised. The error then goes on to the CLI's handler, which
    prints the line and sets the exit status as without ``--debug``.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace, console: Console) -> int:
        try:
            return handler(args, console)
        except HpsearchError as exc:
            if getattr(args, "debug", False):
                text = "".join(traceback.format_exception(exc)).rstrip()
                console.print(escape(text), highlight=False, soft_wrap=True)
            raise

    return run


def load(args: argparse.Namespace) -> Study:
    """The study the arguments name, validated (overrides and ``--storage`` applied)."""
    from hpsearch.spec import load_study

    return load_study(args.study, args.overrides, storage=args.storage)


def stdout() -> Console:
    """The console results go to: a terminal's width, or 160 columns in a log or a pipe.

    Rich falls back to 80 columns when stdout is not a terminal, which truncates the report's
    wider tables (the family table has ten columns) in CI logs and files.
    """
    return Console(width=None if sys.stdout.isatty() else 160)


def html_path(study_results: Path, name: str) -> Path:
    """Where a study's Pareto plot is written."""
    return study_results / name / "pareto.html"
