"""``hpsearch run``: check the study, run its trials on Ray Tune, print the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from hpsearch.cli._common import (
    debug_argument,
    frozen_heap,
    html_path,
    load,
    stdout,
    study_arguments,
    traced,
)
from hpsearch.errors import InputError

if TYPE_CHECKING:
    from hpsearch.prepare import PreparedStudy
    from hpsearch.recorder import Recorder
    from hpsearch.runner._driver import RunSummary


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
    run.add_argument(
        "--replay",
        type=Path,
        metavar="TABLE",
        help="no training: replay the search against a learning-curve table (`hpsearch curves "
        "record`) on a simulated clock, into the study <name>-replay unless --set name=...",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --replay: trials side by side on the simulated clock (default: as recorded)",
    )
    debug_argument(run)
    run.set_defaults(handler=traced(handle))


def handle(args: argparse.Namespace, console: Console) -> int:
    """Check the study, its data and arguments, run its trials, print the report.

    Everything a user can get wrong is checked before storage is opened: the study and its
    space, ``--address``, the data and objective, the searcher against the space, the enqueue
    file. A refused run leaves the storage as it found it (no new study, no queued trial).
    """
    from hpsearch.prepare import prepare
    from hpsearch.searchers import make_searcher
    from hpsearch.spec import load_enqueue

    if getattr(args, "replay", None) is not None:
        return handle_replay(args, console)
    if getattr(args, "workers", None) is not None:
        raise InputError("--workers", "workers", "only applies with --replay", "add --replay TABLE")
    loaded = load(args)
    if args.address is not None:
        from hpsearch.runner._address import check_address

        check_address(args.address)
    prepared = prepare(loaded, console)
    study = prepared.study
    make_searcher(study)  # the Recorder makes it again; here its refusals precede storage
    enqueue = args.enqueue or study.spec.enqueue
    queue = load_enqueue(enqueue, study.space) if enqueue is not None else []
    with frozen_heap():
        return run_checked(args, console, prepared, enqueue, queue)


def run_checked(
    args: argparse.Namespace,
    console: Console,
    prepared: PreparedStudy,
    enqueue: Path | None,
    queue: list[tuple[str, dict[str, Any]]],
) -> int:
    """Open the storage, record the run's start, run the trials, print the report."""
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.report import print_report

    study = prepared.study
    storage = open_storage(
        study.spec.storage,
        source=(args.storage and "--storage") or study.source,
        heartbeat_seconds=study.spec.resume.heartbeat_seconds,
    )
    recorder = Recorder(
        study, storage, input_stats=prepared.input_stats, provenance=prepared.provenance()
    )
    record_baseline(prepared, recorder, console)
    if enqueue is not None:
        queued = recorder.enqueue(queue)
        console.print(f"Queued {queued} configuration(s) from {enqueue} to run first.")

    from hpsearch.results.storage import mask_url
    from hpsearch.runner import run_study

    # The password stays out of the terminal; the user has it (or PGPASSWORD does).
    storage_arg = f" --storage {mask_url(args.storage)}" if args.storage else ""
    resume = f"hpsearch run {args.study}{storage_arg}"

    def close(summary: RunSummary) -> None:
        """The run's closing lines, printed while Ray shuts down (see ``run_study``)."""
        if summary.numbers:
            console.print(summary.line())
        if summary.signal is None:
            # Interrupted, the report would only delay the exit the user asked for.
            print_report(
                recorder.study, stdout(), html_path(study.spec.results_dir, study.spec.name)
            )

    summary = run_study(prepared, recorder, console=console, address=args.address, closing=close)
    if summary.signal is not None:
        console.print(
            f"interrupted: finished trials are stored, cut ones run again next time; "
            f"`{resume}` continues the study",
            highlight=False,
            soft_wrap=True,
        )
        return exit_code(summary)
    code = exit_code(summary)
    if code == 1:
        console.print(f"[bold red]error:[/] {failure_text(summary)}", highlight=False)
    return code


def handle_replay(args: argparse.Namespace, console: Console) -> int:
    """Replay the study's search against a learning-curve table: no data, no Ray workers.

    The replayed study is named ``<name>-replay`` (unless ``--set name=...`` says otherwise),
    so that simulated trials never mix with trained ones in one study.
    """
    from hpsearch.curves import CurveTable
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.report import print_report
    from hpsearch.runner._replay import check_table, replay_study
    from hpsearch.searchers import make_searcher
    from hpsearch.spec import load_study

    named = any(item.split("=", 1)[0].strip() == "name" for item in args.overrides)
    study = load_study(args.study, args.overrides, storage=args.storage)
    if not named:
        study = load_study(
            args.study, [*args.overrides, f"name={study.spec.name}-replay"], storage=args.storage
        )
    if args.enqueue is not None or args.address is not None:
        which = "--enqueue" if args.enqueue is not None else "--address"
        raise InputError(which, which[2:], "does not apply to a replay", f"drop {which}")
    table = CurveTable.read(args.replay)
    check_table(study, table, args.replay)
    workers = args.workers or int(table.meta.get("concurrency") or 2)
    if workers < 1:
        raise InputError("--workers", "workers", f"got {workers}", "give N >= 1")
    make_searcher(study)  # its refusals precede storage
    storage = open_storage(
        study.spec.storage, source=(args.storage and "--storage") or study.source
    )
    meta = table.meta
    recorder = Recorder(
        study,
        storage,
        provenance={k: meta[k] for k in ("task_info", "table_metrics", "data") if meta.get(k)},
    )
    recorder.note_replay(
        {
            "table": str(args.replay),
            "rows": table.rows,
            "epochs": table.epochs,
            "workers": workers,
            "recorded_with": meta.get("command"),
            "recorded_on": meta.get("hardware"),
        },
        baseline=meta.get("baseline"),
    )
    console.print(
        f"[bold]Replaying[/] {study.spec.budget.trials} trial(s) of {study.spec.name!r} against "
        f"{args.replay} ({table.rows} recorded configurations), {workers} at a time on a "
        "simulated clock",
        highlight=False,
    )
    summary = replay_study(study, recorder, table, workers=workers, console=console)
    if summary.numbers:
        console.print(summary.line(), highlight=False)
    print_report(recorder.study, stdout(), html_path(study.spec.results_dir, study.spec.name))
    return exit_code(summary)


def exit_code(summary: RunSummary) -> int:
    """The run's exit status: 0 only when it did what was asked.

    130 after SIGINT and 143 after SIGTERM (128 + the signal, as a shell reports a process
    the signal ended), 1 when the failure streak stopped the run or none of the trials this
    run ended is COMPLETE (a study without a single result to show), 0 otherwise.
    """
    from hpsearch.lifecycle import FAILURE_STREAK

    if summary.signal is not None:
        return 128 + summary.signal
    if summary.stop_reason == FAILURE_STREAK:
        return 1
    if summary.outcomes and not any(o.state == "COMPLETE" for o in summary.outcomes.values()):
        return 1
    return 0


def failure_text(summary: RunSummary) -> str:
    """What failed, for exit status 1."""
    from hpsearch.lifecycle import FAILURE_STREAK, tally

    counts = ", ".join(f"{state} {n}" for state, n in tally(summary.outcomes.values()).items())
    if summary.stop_reason == FAILURE_STREAK:
        return (
            f"the run stopped after too many trials failed in a row ({counts}); each failed "
            "trial's error is stored (user attribute `error`); fix the objective and rerun"
        )
    return (
        f"no trial of this run completed ({counts}); see the stored `stop_reason` and "
        "`error` of its trials"
    )


def record_baseline(prepared: PreparedStudy, recorder: Recorder, console: Console) -> None:
    """Score the task's classical baseline once per study and store it on the study.

    The report draws it as a line beside the trials (a network worth its cost clearly beats
    it); scored on the study's own test split, once, since it depends on data and split alone.
    A baseline that fails is said and skipped: it must never cost the search.
    """
    baseline = prepared.task.baseline
    if baseline is None or "baseline" in recorder.study.user_attrs:
        return
    try:
        score = baseline(prepared.data)
    except Exception as exc:
        console.print(f"baseline not scored ({type(exc).__name__}: {exc})", highlight=False)
        return
    recorder.study.set_user_attr("baseline", score.stored())
    console.print(f"Baseline: {score.line}", highlight=False, soft_wrap=True)
