"""``hpsearch report``: the stored study's Pareto table and plot, without running anything."""

from __future__ import annotations

import argparse

from rich.console import Console

from hpsearch.cli._common import html_path, load, stdout, study_arguments
from hpsearch.errors import InputError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch report STUDY``."""
    report = commands.add_parser("report", help="print the Pareto table and write the plot")
    study_arguments(report)
    report.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    """Print the stored study's report and write its plot."""
    import optuna

    from hpsearch.recorder import open_storage
    from hpsearch.report import print_report

    study = load(args)
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
    print_report(stored, stdout(), html_path(study.spec.results_dir, study.spec.name))
    return 0
