"""``hpsearch simulate`` (a task's simulator) and ``hpsearch baseline`` (its classical baseline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hpsearch.cli._common import load, stdout, study_arguments
from hpsearch.errors import InputError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpsearch simulate TASK`` and ``hpsearch baseline STUDY``."""
    simulate = commands.add_parser("simulate", help="write a simulated data set to HDF5")
    simulate.add_argument("task", choices=_simulated_tasks(), help="the task whose data to make")
    simulate.add_argument("--events", type=int, required=True)
    simulate.add_argument("--out", type=Path, required=True)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(handler=handle_simulate)

    baseline = commands.add_parser(
        "baseline", help="score the study's task's classical baseline on its test split"
    )
    study_arguments(baseline)
    baseline.set_defaults(handler=handle_baseline)


def _simulated_tasks() -> list[str]:
    from hpsearch.tasks import TASKS

    return sorted(name for name, task in TASKS.items() if task.simulator is not None)


def handle_simulate(args: argparse.Namespace, console: Console) -> int:
    """Write the task's simulated data set."""
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


def handle_baseline(args: argparse.Namespace, console: Console) -> int:
    """Score the study's task's classical baseline on the study's test split."""
    from hpsearch.prepare import prepare

    prepared = prepare(load(args), console)
    task = prepared.task
    if task.baseline is None:
        raise InputError(
            prepared.study.source,
            "task",
            f"task {task.name!r} has no classical baseline",
            "compare against the report's best trial instead",
        )
    stdout().print(task.baseline(prepared.data).line)
    return 0
