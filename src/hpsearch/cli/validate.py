"""``hpsearch validate``: check a study and its space, running nothing (no TensorFlow, no Ray)."""

from __future__ import annotations

import argparse

from rich.console import Console

from hpsearch.cli._common import debug_argument, load, stdout, study_arguments, traced


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch validate STUDY``."""
    validate = commands.add_parser(
        "validate", help="check a study and its space, and print the space as a tree"
    )
    study_arguments(validate)
    debug_argument(validate)
    validate.set_defaults(handler=traced(handle))


def handle(args: argparse.Namespace, console: Console) -> int:
    """Check the study, its space and searcher; print the space as a tree."""
    from hpsearch.prepare import check_choices
    from hpsearch.searchers import make_searcher
    from hpsearch.spec import load_enqueue
    from hpsearch.spec.tree import space_tree

    study = load(args)
    check_choices(study)
    searcher = make_searcher(study)
    if study.spec.enqueue is not None:
        load_enqueue(study.spec.enqueue, study.space)
    out = stdout()
    out.print(space_tree(study.space))
    out.print(f"searcher: {searcher.objectives_note()}")
    out.print(f"[green]{study.source} is valid.[/]")
    return 0
