"""The ``hpsearch`` command line: one subcommand per job.

Errors a user can fix (:class:`~hpsearch.errors.InputError`) end with their message on stderr
and exit code 2, before anything is run or stored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from hpsearch._version import __version__
from hpsearch.errors import HpsearchError, InputError

if TYPE_CHECKING:
    from hpsearch.spec import Study


def _study_arguments(parser: argparse.ArgumentParser) -> None:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpsearch",
        description="Hyperparameter and architecture search for astroparticle deep learning.",
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a study's trials on Ray Tune")
    _study_arguments(run)
    run.add_argument("--address", help="Ray cluster address (default: start local Ray)")
    run.add_argument(
        "--enqueue",
        type=Path,
        metavar="FILE",
        help="configurations to run first (YAML: label -> parameters as the objective gets them)",
    )

    validate = commands.add_parser(
        "validate", help="check a study and its space, and print the space as a tree"
    )
    _study_arguments(validate)

    report = commands.add_parser("report", help="print the Pareto table and write the plot")
    _study_arguments(report)

    simulate = commands.add_parser("simulate", help="write a simulated data set to HDF5")
    simulate.add_argument("task", choices=_simulated_tasks(), help="the task whose data to make")
    simulate.add_argument("--events", type=int, required=True)
    simulate.add_argument("--out", type=Path, required=True)
    simulate.add_argument("--seed", type=int, default=0)

    baseline = commands.add_parser(
        "baseline", help="score the study's task's classical baseline on its test split"
    )
    _study_arguments(baseline)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on the storage")
    dashboard.add_argument("study", type=Path, nargs="?", help="study file (for its storage)")
    dashboard.add_argument("--storage", help="Optuna storage URL")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    return parser


def _simulated_tasks() -> list[str]:
    from hpsearch.tasks import TASKS

    return sorted(name for name, task in TASKS.items() if task.simulator is not None)


def _load(args: argparse.Namespace) -> Study:
    from hpsearch.spec import load_study

    return load_study(args.study, args.overrides, storage=args.storage)


def _stdout() -> Console:
    """The console results go to: a terminal's width, or 160 columns in a log or a pipe.

    Rich falls back to 80 columns when stdout is not a terminal, which truncates the report's
    wider tables (the family table has ten columns) in CI logs and files.
    """
    return Console(width=None if sys.stdout.isatty() else 160)


def _html_path(study_results: Path, name: str) -> Path:
    return study_results / name / "pareto.html"


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from hpsearch.prepare import prepare
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.report import print_report

    prepared = prepare(_load(args), console)
    study = prepared.study
    storage = open_storage(
        study.spec.storage, source=(args.storage and "--storage") or study.source
    )
    recorder = Recorder(
        study, storage, input_stats=prepared.input_stats, provenance=prepared.provenance()
    )
    enqueue = args.enqueue or study.spec.enqueue
    if enqueue is not None:
        from hpsearch.spec import load_enqueue

        queued = recorder.enqueue(load_enqueue(enqueue, study.space))
        console.print(f"Queued {queued} configuration(s) from {enqueue} to run first.")

    from hpsearch.runner import run_study

    summary = run_study(prepared, recorder, console=console, address=args.address)
    if summary.numbers:
        console.print(summary.line())
    print_report(recorder.study, _stdout(), _html_path(study.spec.results_dir, study.spec.name))
    return 0


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from hpsearch.searchers import make_searcher
    from hpsearch.spec import load_enqueue
    from hpsearch.spec.tree import space_tree

    study = _load(args)
    searcher = make_searcher(study)
    if study.spec.enqueue is not None:
        load_enqueue(study.spec.enqueue, study.space)
    out = _stdout()
    out.print(space_tree(study.space))
    out.print(f"searcher: {searcher.objectives_note()}")
    out.print(f"[green]{study.source} is valid.[/]")
    return 0


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    import optuna

    from hpsearch.recorder import open_storage
    from hpsearch.report import print_report

    study = _load(args)
    storage = open_storage(study.spec.storage, source=study.source)
    try:
        stored = optuna.load_study(study_name=study.spec.name, storage=storage)
    except KeyError as exc:
        raise InputError(
            study.source,
            "name",
            f"no study {study.spec.name!r} in {study.spec.storage}",
            "run it first with `hpsearch run`",
        ) from exc
    print_report(stored, _stdout(), _html_path(study.spec.results_dir, study.spec.name))
    return 0


def _cmd_simulate(args: argparse.Namespace, console: Console) -> int:
    from hpsearch.tasks import TASKS

    if args.events < 1:
        raise InputError(
            "--events",
            "events",
            f"must be positive, got {args.events}",
            "give the number of events to simulate, e.g. --events 10000",
        )
    simulator = TASKS[args.task].load_simulator()
    if simulator is None:  # argparse offers only tasks with a simulator
        raise InputError("task", args.task, "has no simulator", "choose another task")
    path = simulator.simulate_to_file(args.out, args.events, args.seed, progress=True)
    console.print(f"Wrote {args.events} events to {path}")
    return 0


def _cmd_baseline(args: argparse.Namespace, console: Console) -> int:
    from hpsearch.prepare import prepare

    prepared = prepare(_load(args), console)
    task = prepared.task
    if task.baseline is None:
        raise InputError(
            prepared.study.source,
            "task",
            f"task {task.name!r} has no classical baseline",
            "compare against the report's best trial instead",
        )
    console.print(task.baseline(prepared.data).line)
    return 0


def _cmd_dashboard(args: argparse.Namespace, console: Console) -> int:
    from optuna_dashboard import run_server

    from hpsearch.recorder import open_storage

    url = args.storage
    if url is None and args.study is not None:
        url = _load(argparse.Namespace(study=args.study, overrides=[], storage=None)).spec.storage
    if url is None:
        from hpsearch.spec import DEFAULT_STORAGE

        url = DEFAULT_STORAGE
    storage = open_storage(url, source="--storage")
    console.print(f"optuna-dashboard on http://{args.host}:{args.port} for {url} (Ctrl-C stops)")
    run_server(storage, host=args.host, port=args.port)
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "validate": _cmd_validate,
    "report": _cmd_report,
    "simulate": _cmd_simulate,
    "baseline": _cmd_baseline,
    "dashboard": _cmd_dashboard,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpsearch`` console script."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    import optuna

    # hpsearch prints its own progress; Optuna's INFO lines would repeat it.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _COMMANDS[args.command](args, console)
    except InputError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return InputError.exit_code
    except HpsearchError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are stored; rerun to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
