"""``hpsearch run``: check the study, run its trials on Ray Tune, print the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hpsearch.cli._common import html_path, load, stdout, study_arguments


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch run STUDY``."""
    run = commands.add_parser("run", help="run a study's trials on Ray Tune")
    study_arguments(run)
    run.add_argument("--address", help="Ray cluster address (default: start local Ray)")
    run.add_argument(
        "--enqueue",
        type=Path,
        metavar="FILE",
        help="configurations to run first (YAML: label -> parameters as the objective gets them)",
    )
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    """Check the study and its data, run its trials, print the report."""
    from hpsearch.prepare import prepare
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.report import print_report

    prepared = prepare(load(args), console)
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
    print_report(recorder.study, stdout(), html_path(study.spec.results_dir, study.spec.name))
    return 0
