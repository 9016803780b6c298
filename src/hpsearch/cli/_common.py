"""What every command shares: the study arguments, loading a study, the result console."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from hpsearch.spec import Study


def study_arguments(parser: argparse.ArgumentParser) -> None:
    """The study file, ``--set`` overrides and ``--storage``, as every study command takes them."""
    parser.add_argument("study", type=Path, help="study file, e.g. studies/xgamma_resnet.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study field, e.g. --set budget.trials=4 (repeatable)",
    )
    parser.add_argument("--storage", help="Optuna storage URL (overrides the study's)")


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
