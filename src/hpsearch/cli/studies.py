"""``hpsearch ls``, ``show`` and ``delete``: the studies in a storage, read without a run.

``ls`` and ``show`` only read, and open storage with
:func:`~hpsearch.results.storage.open_existing_storage`, so a mistyped URL is an error that
lists the databases there rather than a new empty one. ``delete`` asks before it deletes.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hpsearch.cli._common import stdout

if TYPE_CHECKING:
    from hpsearch.report import StudyView

LS_EPILOG = """\
One row per study: its objectives, trials by state, the best value of each objective over its
COMPLETE trials (each objective on its own, so two bests may come from different trials) and
when a trial last started or ended.

examples:
  hpsearch ls
  hpsearch ls --storage sqlite:///results/other.db
"""

SHOW_EPILOG = """\
STUDY is a study file (its name and storage are read from it) or a study name with --storage.
Prints the trials by state, the Pareto-optimal trials with their objectives, test metrics and
hyperparameters, and, for a study over model families, the best trial of each family.

examples:
  hpsearch show studies/xgamma_resnet.yaml
  hpsearch show xgamma_resnet --storage sqlite:///results/hpsearch.db
"""

DELETE_EPILOG = """\
Deletes the study and all its trials from the storage (the results/ files stay). Asks first;
--yes skips the question (for scripts).

examples:
  hpsearch delete xgamma_resnet --storage sqlite:///results/hpsearch.db
  hpsearch delete studies/xgamma_resnet.yaml --yes
"""

_DEFAULT = "sqlite:///results/hpsearch.db"


def _storage_argument(parser: argparse.ArgumentParser, *, study: bool) -> None:
    default = "the study file's, else " if study else ""
    parser.add_argument("--storage", help=f"Optuna storage URL (default: {default}{_DEFAULT})")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch ls``, ``hpsearch show STUDY`` and ``hpsearch delete STUDY``."""
    formatter = argparse.RawDescriptionHelpFormatter
    ls = commands.add_parser(
        "ls",
        help="list the studies in a storage",
        description="List the studies in a storage, with their trials and best values.",
        epilog=LS_EPILOG,
        formatter_class=formatter,
    )
    _storage_argument(ls, study=False)
    ls.set_defaults(handler=handle_ls)

    show = commands.add_parser(
        "show",
        help="print a study's Pareto set with hyperparameters, and its families",
        description="Print a stored study's Pareto set with its hyperparameters and the "
        "per-family table, without running anything.",
        epilog=SHOW_EPILOG,
        formatter_class=formatter,
    )
    show.add_argument("study", help="study file, or a study name with --storage")
    _storage_argument(show, study=True)
    show.set_defaults(handler=handle_show)

    delete = commands.add_parser(
        "delete",
        help="delete a study and its trials from storage",
        description="Delete a study and every trial of it from its storage.",
        epilog=DELETE_EPILOG,
        formatter_class=formatter,
    )
    delete.add_argument("study", help="study file, or a study name with --storage")
    _storage_argument(delete, study=True)
    delete.add_argument("--yes", action="store_true", help="delete without asking")
    delete.set_defaults(handler=handle_delete)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _last_activity(view: StudyView) -> datetime | None:
    times = [
        t
        for trial in view.trials
        for t in (trial.datetime_start, trial.datetime_complete)
        if t is not None
    ]
    return max(times) if times else None


def summary_row(view: StudyView) -> dict[str, Any]:
    """What ``ls`` shows of one study, as plain values (tests read it)."""
    from optuna.study import StudyDirection

    from hpsearch.report import state_counts

    complete = [t for t in view.trials if t.state.name == "COMPLETE"]
    best: dict[str, float | None] = {}
    for name, direction in zip(view.objectives, view.directions, strict=True):
        values = [v for t in complete if (v := view.metric(t, name)) is not None]
        pick = min if direction == StudyDirection.MINIMIZE else max
        best[name] = pick(values) if values else None
    last = _last_activity(view)
    return {
        "name": view.name,
        "states": dict(sorted(state_counts(view).items())),
        "best": best,
        "last": last.isoformat(sep=" ", timespec="seconds") if last else None,
    }


def handle_ls(args: argparse.Namespace, console: Console) -> int:
    """List every study of the storage."""
    import optuna

    from hpsearch.report import StudyView
    from hpsearch.results.storage import mask_url, open_existing_storage, study_names

    url = args.storage or _DEFAULT
    storage = open_existing_storage(url)
    names = study_names(storage)
    out = stdout()
    if not names:
        out.print(f"No studies in {escape(mask_url(url))}.", highlight=False)
        return 0
    table = Table(title=f"Studies in {mask_url(url)}")
    for column in ("study", "trials", "best values", "last activity"):
        table.add_column(column)
    for name in names:
        view = StudyView.read(optuna.load_study(study_name=name, storage=storage))
        row = summary_row(view)
        states = ", ".join(f"{state} {n}" for state, n in row["states"].items()) or "none"
        best = ", ".join(
            f"{metric} {_fmt(value)} ({direction.name.lower()[:3]})"
            for (metric, value), direction in zip(row["best"].items(), view.directions, strict=True)
        )
        table.add_row(escape(name), states, best, row["last"] or "-")
    out.print(table)
    return 0


def params_table(view: StudyView) -> Table:
    """The Pareto trials' hyperparameters: one row per trial, one column per parameter."""
    front = list(view.front)
    names: dict[str, None] = {}
    for trial in front:
        names.update((name, None) for name in trial.params)
    table = Table(title=f"Hyperparameters of the Pareto-optimal trials of {view.name!r}")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for trial in front:
        cells = []
        for name in names:
            value = trial.params.get(name)
            cells.append(
                "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
            )
        table.add_row(str(trial.number), *cells)
    return table


def handle_show(args: argparse.Namespace, console: Console) -> int:
    """Print the study's counts, Pareto set with hyperparameters and family table."""
    from hpsearch.report import StudyView, family_table, pareto_table, state_counts
    from hpsearch.results.storage import open_study, resolve_study

    ref = resolve_study(args.study, args.storage)
    view = StudyView.read(open_study(ref))
    out = stdout()
    counts = state_counts(view)
    line = ", ".join(f"{s} {counts.get(s, 0)}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))
    out.print(f"Study {escape(view.name)!r}: {line}", highlight=False)
    if not view.front:
        out.print("No COMPLETE trial yet, so no Pareto set.")
        return 0
    out.print(pareto_table(view))
    out.print(params_table(view))
    families = family_table(view)
    if families is not None:
        out.print(families)
    return 0


def handle_delete(args: argparse.Namespace, console: Console) -> int:
    """Delete the study after asking (or at once with ``--yes``)."""
    import optuna

    from hpsearch.results.storage import (
        load_existing_study,
        mask_url,
        open_existing_storage,
        resolve_study,
    )

    ref = resolve_study(args.study, args.storage)
    storage = open_existing_storage(ref.url)
    study = load_existing_study(ref.name, storage, url=ref.url, source=ref.source)
    n_trials = len(study.get_trials(deepcopy=False))
    where = mask_url(ref.url)
    if not args.yes:
        try:
            answer = input(f"Delete study {ref.name!r} ({n_trials} trials) from {where}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            console.print("Not deleted.")
            return 1
    optuna.delete_study(study_name=ref.name, storage=storage)
    stdout().print(
        f"Deleted study {escape(ref.name)!r} ({n_trials} trials) from {escape(where)}.",
        highlight=False,
    )
    return 0
