"""Everything checked before a study touches storage: data, objective file, metrics.

A study that fails here has run nothing and stored nothing; the CLI turns the
:class:`~hpsearch.errors.InputError` into exit code 2.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from rich.console import Console

from hpsearch.data import DatasetInfo, Layout, inspect_dataset
from hpsearch.errors import InputError
from hpsearch.objective import REQUIRED_METRICS, DataRef, load_objective
from hpsearch.seeding import derive_seed
from hpsearch.spec import Study


@dataclass(frozen=True)
class PreparedStudy:
    """A study whose data and objective were found and checked.

    Attributes:
        study: The validated study.
        info: What the data file holds.
        data: The picklable pointer to data and split that every trial gets.
        objective: The imported objective module.
    """

    study: Study
    info: DatasetInfo
    data: DataRef
    objective: ModuleType


def simulate_hint(study: Study) -> str:
    """The command that would make the study's data file."""
    events = study.spec.data.simulate.events if study.spec.data.simulate else 10000
    return (
        f"run `hpsearch simulate {study.spec.task} --events {events} --out "
        f"{study.spec.data.path}`, or point data.path at your own file"
    )


def ensure_data(study: Study, console: Console) -> None:
    """Simulate the study's data file if it is missing and the study says how."""
    data = study.spec.data
    if data.path.exists() or data.simulate is None:
        return
    try:
        simulator = importlib.import_module(f"hpsearch.simulate.{study.spec.task}")
    except ModuleNotFoundError as exc:
        raise InputError(
            study.source,
            "data.simulate",
            f"hpsearch has no simulator for task {study.spec.task!r}",
            "provide the data file at data.path, or remove data.simulate",
        ) from exc
    seed = data.simulate.seed
    if seed is None:
        seed = derive_seed(study.spec.seed, "simulate")
    console.print(
        f"[bold]Simulating[/] {data.simulate.events} {study.spec.task} events "
        f"-> {data.path} (seed {seed})"
    )
    simulator.simulate_to_file(data.path, data.simulate.events, seed, progress=True)


def prepare(study: Study, console: Console) -> PreparedStudy:
    """Find and check the data and the objective; simulate data when the study says how.

    Raises:
        InputError: Missing or malformed data, objective file, or metric names.
    """
    spec = study.spec
    ensure_data(study, console)
    layout = Layout(spec.data.x_key, spec.data.y_key)
    info = inspect_dataset(
        spec.data.path,
        layout,
        simulate_hint=simulate_hint(study),
        scan_finite=spec.data.scan_finite,
    )
    objective = load_objective(spec.objective_path(), source=study.source)
    reported = set(objective.METRICS) | set(REQUIRED_METRICS)
    checks = [(f"objectives.{i}.metric", o.metric) for i, o in enumerate(spec.objectives)]
    checks.append(("scheduler.metric", spec.scheduler.metric))
    for key, metric in checks:
        if metric not in reported:
            raise InputError(
                study.source,
                key,
                f"metric {metric!r} is not reported by {spec.objective_path()}",
                f"use one of {', '.join(sorted(reported))}",
            )
    data = DataRef(
        path=str(Path(spec.data.path).resolve()),
        x_key=spec.data.x_key,
        y_key=spec.data.y_key,
        fractions=spec.data.split.fractions(),
        block_size=spec.data.block_size,
        split_seed=derive_seed(spec.seed, "split"),
        max_events=spec.data.max_events,
    )
    return PreparedStudy(study=study, info=info, data=data, objective=objective)
