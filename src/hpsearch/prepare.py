"""Everything checked before a study touches storage: data, objective file, metrics.

A study that fails here has run nothing and stored nothing; the CLI turns the
:class:`~hpsearch.errors.InputError` into exit code 2.

What is learned here once is handed to every trial rather than learned again in each: the
file's inspection travels inside the :class:`~hpsearch.objective.DataRef`, and the objective's
input statistics (computed from the training split) in :attr:`PreparedStudy.input_stats`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

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
        input_stats: What the objective's optional ``input_stats(data)`` hook computed from the
            training split, as plain JSON values (``{}`` without the hook). Every trial gets
            this same dict as ``TrialContext.input_stats``, and the Recorder stores it with the
            study, so all trials normalise their inputs alike and the record says how.
    """

    study: Study
    info: DatasetInfo
    data: DataRef
    objective: ModuleType
    input_stats: dict[str, Any] = field(default_factory=dict)


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
        dataset_info=info,
    )
    stats = compute_input_stats(objective, data, spec.objective_path())
    return PreparedStudy(study=study, info=info, data=data, objective=objective, input_stats=stats)


def compute_input_stats(objective: ModuleType, data: DataRef, source: str | Path) -> dict[str, Any]:
    """Call the objective's ``input_stats(data)`` hook, if it has one, and check its result.

    The result goes through JSON and back, so trials use exactly the values that storage keeps
    (tuples become lists, numpy scalars and arrays plain numbers and lists); NaN and infinity
    are refused, since a NaN scale would make every trial fail.

    Args:
        objective: The imported objective module.
        data: The study's data; the hook reads its training split.
        source: The objective file, for error messages.

    Returns:
        The statistics as plain JSON values, or ``{}`` when the objective has no hook.

    Raises:
        InputError: The hook failed (a :class:`~hpsearch.errors.DataError` from reading the
            data passes through as it is), or returned something other than a JSON object of
            finite values.
    """
    hook = getattr(objective, "input_stats", None)
    if hook is None:
        return {}
    try:
        stats = hook(data)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            source,
            "input_stats",
            f"computing the input statistics failed: {type(exc).__name__}: {exc}",
            "fix the objective's `input_stats(data)` so that it runs on the study's data",
        ) from exc
    if not isinstance(stats, dict) or not all(isinstance(k, str) for k in stats):
        raise InputError(
            source,
            "input_stats",
            f"`input_stats(data)` returned {type(stats).__name__}, not a dict with str keys",
            'return a dict of plain values, e.g. {"amplitude_scale": 812.0}',
        )
    try:
        plain: dict[str, Any] = json.loads(json.dumps(stats, allow_nan=False, default=_tolist))
    except (TypeError, ValueError) as exc:
        raise InputError(
            source,
            "input_stats",
            f"`input_stats(data)` returned values that are not finite JSON values: {exc}",
            "return plain floats, ints, strings and lists (use float(x) for numpy numbers), "
            "all finite",
        ) from exc
    return plain


def _tolist(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays (anything with ``tolist``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
