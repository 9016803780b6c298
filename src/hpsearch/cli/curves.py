"""``hpsearch curves``: record a learning-curve table, or describe one.

``record`` is an ordinary ``hpsearch run`` of the study with the search switched off: random
configurations from the study's master seed, no early stopping, every trial to the full
epoch budget, in its own study (``<name>-curves``) of the study's storage. A recording that is
stopped resumes like any run (the same command again), and the table is written from what the
storage holds, so nothing trained is lost.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from hpsearch.cli._common import debug_argument, stdout, study_arguments, traced
from hpsearch.errors import InputError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch curves record STUDY --configs N`` and ``hpsearch curves show TABLE``."""
    curves = commands.add_parser(
        "curves", help="record learning-curve tables that `hpsearch run --replay` replays"
    )
    actions = curves.add_subparsers(dest="action", required=True)
    record = actions.add_parser(
        "record",
        help="train a seeded random sample of the study's configurations to the full epoch "
        "budget and write every epoch's metrics and seconds to a table",
    )
    study_arguments(record)
    record.add_argument(
        "--configs", type=int, required=True, metavar="N", help="configurations to train"
    )
    record.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="the table to write (default: <results_dir>/curves/<study>.h5)",
    )
    record.add_argument("--address", help="Ray cluster address (default: start local Ray)")
    debug_argument(record)
    record.set_defaults(handler=traced(handle_record))
    show = actions.add_parser("show", help="describe a learning-curve table")
    show.add_argument("table", type=Path, help="a table written by `hpsearch curves record`")
    show.set_defaults(handler=traced(handle_show))


def recording_overrides(name: str, configs: int) -> list[str]:
    """The ``--set`` overrides that turn a study into its recording (user's own come after)."""
    return [
        f"name={name}-curves",
        "searcher={type: random}",
        "scheduler={type: fifo}",
        f"budget.trials={configs}",
        "budget.seconds=null",
        "enqueue=null",
        "keep_models=none",
    ]


def handle_record(args: argparse.Namespace, console: Console) -> int:
    """Run the recording study, then write its table."""
    from hpsearch.cli import run
    from hpsearch.curves import CurveTable
    from hpsearch.results.storage import open_existing_storage
    from hpsearch.spec import load_study

    if args.configs < 1:
        raise InputError("--configs", "configs", f"got {args.configs}", "give N >= 1")
    original = load_study(args.study, args.overrides, storage=args.storage)
    overrides = [*recording_overrides(original.spec.name, args.configs), *args.overrides]
    recording = load_study(args.study, overrides, storage=args.storage)
    spec = recording.spec
    out = args.out or spec.results_dir / "curves" / f"{original.spec.name}.h5"
    run_args = argparse.Namespace(**{**vars(args), "overrides": overrides, "enqueue": None})
    code = run.handle(run_args, console)
    if code not in (0, 1):
        return code
    import optuna

    storage = open_existing_storage(spec.storage, source=args.storage and "--storage")
    stored = optuna.load_study(study_name=spec.name, storage=storage)
    attrs = stored.user_attrs
    meta: dict[str, Any] = {
        "study": original.spec.name,
        "recording_study": spec.name,
        "study_file": str(args.study),
        "space_file": str(recording.space.source),
        "space_fingerprint": recording.space.fingerprint(),
        "space": recording.space.to_dict(),
        "task": spec.task,
        "objectives": [o.model_dump() for o in spec.objectives],
        "epochs": spec.budget.epochs,
        "seed": spec.seed,
        "command": _command(args),
        "hardware": attrs.get("hardware"),
        "versions": attrs.get("versions"),
        "concurrency": _concurrency(attrs.get("runs")),
        "data": attrs.get("data"),
        # What a replayed study stores as its own (the report reads them).
        "task_info": attrs.get("task_info"),
        "table_metrics": attrs.get("table_metrics"),
        "baseline": attrs.get("baseline"),
    }
    table = CurveTable.from_study(stored, epochs=spec.budget.epochs, meta=meta)
    table.write(out)
    console.print(
        f"Wrote {out}: {table.rows} configuration(s) x {table.epochs} epochs "
        f"({sum(s == 'FAIL' for s in table.state)} failed). Replay a search on it with "
        f"`hpsearch run {args.study} --replay {out}`.",
        highlight=False,
        soft_wrap=True,
    )
    return code


def _command(args: argparse.Namespace) -> str:
    """The command that records this table, as a user would type it again."""
    words = ["hpsearch", "curves", "record", str(args.study), "--configs", str(args.configs)]
    for item in args.overrides:
        words += ["--set", item]
    for flag, value in (("--storage", args.storage), ("--out", args.out)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def _concurrency(runs: Any) -> int | None:
    """Trials side by side in the recording's last run (the replay's default)."""
    if isinstance(runs, list) and runs and isinstance(runs[-1], dict):
        value = runs[-1].get("concurrency")
        return int(value) if isinstance(value, int) else None
    return None


def handle_show(args: argparse.Namespace, console: Console) -> int:
    """Print what a table holds: rows, epochs, how it was made, each metric's last epoch."""
    import numpy as np
    from rich.table import Table

    from hpsearch.curves import CurveTable

    table = CurveTable.read(args.table, source="table")
    meta = table.meta
    out = stdout()
    out.print(
        f"{args.table}: {table.rows} configurations x {table.epochs} epochs of study "
        f"{meta.get('study')!r} (space {meta.get('space_fingerprint')}); recorded with "
        f"`{meta.get('command')}`",
        highlight=False,
        soft_wrap=True,
    )
    if meta.get("hardware"):
        out.print(f"on {meta['hardware']}", highlight=False, soft_wrap=True)
    metric = next(
        (o["metric"] for o in meta.get("objectives", []) if o["metric"] in table.metrics), None
    )
    grid = Table("metric", "min", "median", "max", "at epoch")
    last = table.epochs - 1
    for name, array in sorted(table.metrics.items()):
        column = array[:, last]
        column = column[np.isfinite(column)]
        if column.size:
            grid.add_row(
                name,
                f"{column.min():.4g}",
                f"{np.median(column):.4g}",
                f"{column.max():.4g}",
                str(table.epochs),
            )
    out.print(grid)
    total = sum(float(table.epoch_seconds(r).sum()) for r in range(table.rows))
    out.print(f"compute recorded: {total:.0f} s of trial wall time", highlight=False)
    if metric is not None:
        out.print(f"first objective: {metric}", highlight=False)
    return 0
