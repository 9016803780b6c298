"""What a task is: everything hpsearch knows about one kind of problem, in one place.

A study names its task (``task: xgamma``, ``task: classify``, ...) and the task supplies what
used to be spread over the CLI, the objective file and the report: the data layout defaults,
whether targets are classes or values, the metrics the objective reports and which way each is
better, the default search space, the simulator, the standard baseline, and the objective.

Nothing here imports TensorFlow, Ray or h5py: a Task is a description, and ``hpsearch
validate`` reads it in milliseconds. The heavy parts (objective, simulator, baseline) are named
by module and imported where used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hpsearch.data import TargetKind
    from hpsearch.objective import DataRef

Direction = Literal["maximize", "minimize"]

#: Metrics every Keras objective built on :func:`hpsearch.training.fit_and_report` reports,
#: whatever the task: costs, all better when smaller.
COST_METRICS: Mapping[str, Direction] = {
    "train_seconds": "minimize",
    "epoch_seconds": "minimize",
    "n_params": "minimize",
    "inference_us_per_event": "minimize",
}


def split_metrics(**base: Direction) -> dict[str, Direction]:
    """``base`` as training, ``val_`` and ``test_`` metrics, plus the :data:`COST_METRICS`.

    Keras names a compiled metric ``accuracy`` on the training batches and ``val_accuracy`` on
    the validation pass; :func:`~hpsearch.training.fit_and_report` adds ``test_accuracy``.
    """
    metrics: dict[str, Direction] = {}
    for prefix in ("", "val_", "test_"):
        metrics.update({prefix + name: direction for name, direction in base.items()})
    metrics.update(COST_METRICS)
    return metrics


@dataclass(frozen=True)
class BaselineScore:
    """A classical baseline's score on the study's test split, as one line for the terminal.

    Attributes:
        metric: The task's metric it is comparable to, e.g. ``test_accuracy``.
        value: Its value.
        line: What ``hpsearch baseline`` prints.
        name: What the report's reference line is labelled with.
    """

    metric: str
    value: float
    line: str
    name: str = "baseline"

    def stored(self) -> dict[str, Any]:
        """As the study stores it (user attribute ``baseline``), for the report's line."""
        return {"metric": self.metric, "value": self.value, "name": self.name}


@dataclass(frozen=True)
class Task:
    """One kind of problem a study can search models for.

    Attributes:
        name: What studies write as ``task:``.
        description: One line, for ``hpsearch`` listings and errors.
        target: Class indices (``classification``) or values (``regression``); decides the
            data checks, the model's head and the loss.
        x_key: Default dataset of the inputs (a study's ``data.x_key`` overrides it).
        y_key: Default dataset of the targets.
        objective: What trains one trial: a module name (``hpsearch.tasks.generic``) or a
            path to an objective file, relative to the working directory (``objectives/...``).
        metrics: Every metric the objective reports, and which way it is better (None where
            a study's own objective file does not say). Study objectives and the scheduler's
            metric are checked against it: maximising a loss is refused before anything runs.
        primary: The metric a study of this task is usually judged on (``val_accuracy``), the
            default objective and scheduler metric.
        table_metrics: Columns of the report's per-family table, in order.
        space: Default search space when a study names none; a path inside the package or
            relative to the working directory.
        simulator: Module with ``simulate_to_file(path, events, seed, config, progress=...)``
            that makes this task's data, or None.
        simulator_config: The simulator module's config class (with ``from_dict``), which a
            study's ``data.simulate.config`` fills.
        baseline: Scores the task's classical baseline on a study's data, or None.
    """

    name: str
    description: str
    target: TargetKind
    x_key: str
    y_key: str
    objective: str
    metrics: Mapping[str, Direction | None]
    primary: str
    table_metrics: tuple[str, ...]
    space: Path | None = None
    simulator: str | None = None
    simulator_config: str | None = None
    baseline: Callable[[DataRef], BaselineScore] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in (self.primary, *self.table_metrics) if m not in self.metrics]
        if unknown:
            raise ValueError(f"task {self.name!r}: {unknown} are not among its metrics")

    def direction(self, metric: str) -> Direction | None:
        """Which way ``metric`` is better, or None when the task does not know the metric."""
        return self.metrics.get(metric)

    def load_simulator(self) -> ModuleType | None:
        """The simulator module (imported now), or None when the task has none."""
        return importlib.import_module(self.simulator) if self.simulator else None

    def describe(self) -> dict[str, Any]:
        """The task as plain values, stored with a study so that its report knows the task."""
        return {
            "name": self.name,
            "target": self.target,
            "primary": self.primary,
            "metrics": dict(self.metrics),
            "table_metrics": list(self.table_metrics),
        }
