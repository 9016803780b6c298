"""The ``hpsearch`` command line: one module per subcommand.

Each command module defines ``add_parser(commands)``, which registers its subcommand and sets
``handler`` to the function that runs it. Errors a user can fix
(:class:`~hpsearch.errors.InputError`) end with their message on stderr and exit code 2, before
anything is run or stored. Importing this package stays cheap: a command imports what it needs
(TensorFlow, Ray, Optuna's storage) when it runs.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from hpsearch._version import __version__
from hpsearch.cli import (
    curves,
    dashboard,
    export,
    report,
    run,
    simulate,
    studies,
    train,
    validate,
)
from hpsearch.errors import HpsearchError, InputError

__all__ = ["console_main", "main"]

#: The command modules, in the order ``hpsearch --help`` lists them.
COMMANDS = (run, validate, report, simulate, dashboard, export, train, studies, curves)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpsearch",
        description="Hyperparameter and architecture search for astroparticle deep learning.",
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpsearch`` console script."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    import optuna

    # hpsearch prints its own progress; Optuna's INFO lines would repeat it.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return int(args.handler(args, console))
    except InputError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return InputError.exit_code
    except HpsearchError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C outside the Tune run (while checking the study, starting Ray); during the run
        # the runner handles SIGINT and SIGTERM itself and returns 130 or 143.
        console.print(
            "interrupted: finished trials are stored; the same `hpsearch run` continues the study"
        )
        return 130


def console_main() -> None:
    """The ``hpsearch`` console script: :func:`main`, then an exit that skips a full collection.

    After a run the interpreter holds a large heap (Ray, Optuna, SQLAlchemy, plotly: some 270k
    objects), and tearing it down at exit took 0.65-0.85 s of every command's wall time, longer
    than a bare Ray Tune script's whole exit. Frozen objects are left out of the collections
    that finalization runs; everything else still happens as usual: atexit hooks (logging,
    Ray), module teardown, flushing stdout and stderr. Nothing is lost, as every command closes
    its files and storage before returning. Only here and not in :func:`main`, which tests and
    other programs call in a process that goes on.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console_main()
