"""The tasks hpsearch knows, by name: what ``task:`` in a study file can say.

* ``classify``: a user's own HDF5 file of inputs ``(N, L)``, ``(N, L, C)``, ``(N, H, W, C)`` or
  ``(N, N, T, C)`` and integer class labels; searched over the model families that read that
  rank. No code to write.
* ``regress``: the same with float targets ``(N,)`` or ``(N, k)``.
* ``xgamma``: X-ray vs gamma-ray pulses of seed study 000, with its simulator and the rise-time
  baseline.
* ``ta_sd``: air-shower reconstruction from Telescope Array surface-detector grids (seed 002),
  with its simulator and the standard LDF + timing fit as the baseline.
* ``gce``: the point-source fraction of the Galactic-Center excess from count maps (seed 004),
  with its simulator and a count-statistic baseline.

A study may also bring its own objective file (``objective_file:``) under a task name hpsearch
does not know: :func:`custom_task` then builds the task from the file's ``METRICS`` (and its
optional ``DIRECTIONS`` and ``TARGET``). Adding a task to hpsearch is one :class:`Task` here
plus its objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hpsearch.errors import InputError
from hpsearch.tasks._base import (
    COST_METRICS,
    BaselineScore,
    Direction,
    Task,
    split_metrics,
)

if TYPE_CHECKING:
    from hpsearch.objective import DataRef

__all__ = [
    "COST_METRICS",
    "TASKS",
    "BaselineScore",
    "Direction",
    "Task",
    "custom_task",
    "get_task",
    "split_metrics",
]

#: The objective module of the generic tasks (inside the package, so that an installed
#: hpsearch runs a user's study from any directory).
GENERIC_OBJECTIVE = "hpsearch.tasks.generic"


def _packaged_space(name: str) -> Path:
    """A search space shipped inside the package."""
    return Path(str(resources.files("hpsearch.tasks") / "spaces" / name))


def _xgamma_baseline(data: DataRef) -> BaselineScore:
    from hpsearch.baselines import score_rise_time_cut

    score = score_rise_time_cut(data)
    return BaselineScore(
        metric="test_accuracy",
        value=score.accuracy,
        name="rise-time cut",
        line=(
            f"Rise-time cut at {score.cut.threshold_ns:.0f} ns (fitted on {score.n_train} "
            f"training events): test accuracy {score.accuracy:.4f} on {score.n_test} events"
        ),
    )


def _ta_sd_baseline(data: DataRef) -> BaselineScore:
    from hpsearch.simulate.ta_sd_fit import angular_resolution_deg, energy_resolution

    truth = data.read("targets/truth", "test").astype("float64")
    fit = truth - data.read("targets/fit_error", "test").astype("float64")
    angle = angular_resolution_deg(fit[:, :2], truth[:, :2])
    energy = energy_resolution(fit[:, 2], truth[:, 2])
    return BaselineScore(
        metric="test_angular_resolution_deg",
        value=angle,
        name="standard LDF + timing fit",
        line=(
            f"Standard LDF + timing fit on {len(truth)} test events: angular resolution "
            f"{angle:.2f} deg (68%), energy resolution {energy:.3f} (std of dE/E)"
        ),
    )


def _gce_baseline(data: DataRef) -> BaselineScore:
    import numpy as np

    from hpsearch.data import iterate
    from hpsearch.simulate.gce_baseline import CountStatisticBaseline

    baseline = CountStatisticBaseline()

    def features(part: str) -> tuple[np.ndarray, np.ndarray]:
        with data.reader(part, 256, shuffle=False, seed=0, stream=True) as reader:
            pairs = [(baseline.features(x[..., 0]), y) for x, y in iterate(reader)]
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    train_features, train_y = features("train")
    baseline.fit_features(train_features, train_y)
    test_features, test_y = features("test")
    error = baseline.predict_features(test_features) - test_y.reshape(-1)
    mae = float(np.abs(error).mean())
    return BaselineScore(
        metric="test_f_src_mae",
        value=mae,
        name="count statistic",
        line=(
            f"Count-statistic baseline (fitted on {len(train_y)} training maps): f_src MAE "
            f"{mae:.4f}, bias {error.mean():+.4f} on {len(test_y)} test maps"
        ),
    )


_CLASSIFICATION = split_metrics(loss="minimize", accuracy="maximize")
_REGRESSION = split_metrics(loss="minimize", mae="minimize", explained_variance="maximize")
_TA_SD: dict[str, Direction | None] = {
    **_REGRESSION,
    **{
        f"{prefix}{name}": "minimize"
        for prefix in ("val_", "test_", "fit_")
        for name in ("angular_resolution_deg", "energy_resolution")
    },
}
_GCE: dict[str, Direction | None] = {
    **_REGRESSION,
    **{
        f"{prefix}f_src_{name}": "minimize"
        for prefix in ("val_", "test_")
        for name in ("mae", "rmse")
    },
    "val_f_src_bias": None,
    "test_f_src_bias": None,
}

_TASKS = (
    Task(
        name="classify",
        description="a user's HDF5 file of inputs and integer class labels",
        target="classification",
        x_key="x",
        y_key="y",
        objective=GENERIC_OBJECTIVE,
        metrics=_CLASSIFICATION,
        primary="val_accuracy",
        table_metrics=("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_seconds"),
        space=_packaged_space("generic.yaml"),
    ),
    Task(
        name="regress",
        description="a user's HDF5 file of inputs and float targets (mean squared error)",
        target="regression",
        x_key="x",
        y_key="y",
        objective=GENERIC_OBJECTIVE,
        metrics=_REGRESSION,
        primary="val_explained_variance",
        table_metrics=(
            "val_loss",
            "val_explained_variance",
            "test_loss",
            "test_explained_variance",
            "train_seconds",
        ),
        space=_packaged_space("generic.yaml"),
    ),
    Task(
        name="xgamma",
        description="X-ray vs gamma-ray SDD pulses (seed study 000)",
        target="classification",
        x_key="waveforms",
        y_key="labels",
        objective="objectives/xgamma.py",
        metrics=_CLASSIFICATION,
        primary="val_accuracy",
        table_metrics=("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_seconds"),
        simulator="hpsearch.simulate.xgamma",
        simulator_config="XGammaConfig",
        baseline=_xgamma_baseline,
    ),
    Task(
        name="ta_sd",
        description="air-shower reconstruction from Telescope Array detector grids (seed 002)",
        target="regression",
        x_key="x",
        y_key="targets/fit_error",
        objective="objectives/ta_sd.py",
        metrics=_TA_SD,
        primary="val_explained_variance",
        table_metrics=(
            "val_loss",
            "val_explained_variance",
            "test_explained_variance",
            "test_angular_resolution_deg",
            "test_energy_resolution",
            "train_seconds",
        ),
        simulator="hpsearch.simulate.ta_sd",
        simulator_config="TaSdConfig",
        baseline=_ta_sd_baseline,
    ),
    Task(
        name="gce",
        description="point-source fraction of the Galactic-Center excess (seed 004)",
        target="regression",
        x_key="x",
        y_key="y",
        objective="objectives/gce.py",
        metrics=_GCE,
        primary="val_f_src_mae",
        table_metrics=(
            "val_f_src_mae",
            "test_f_src_mae",
            "test_f_src_rmse",
            "test_f_src_bias",
            "train_seconds",
        ),
        simulator="hpsearch.simulate.gce",
        simulator_config="GceConfig",
        baseline=_gce_baseline,
    ),
)

#: Every task hpsearch ships, by name.
TASKS: Mapping[str, Task] = {task.name: task for task in _TASKS}


def get_task(name: str, *, source: str | Path, objective_file: Path | None = None) -> Task | None:
    """The task ``name``, or None for a task that a study's own objective file defines.

    Raises:
        InputError: ``name`` is neither a known task nor backed by an objective file.
    """
    if name in TASKS:
        return TASKS[name]
    if objective_file is not None or (Path("objectives") / f"{name}.py").is_file():
        return None
    known = ", ".join(sorted(TASKS))
    raise InputError(
        source,
        "task",
        f"unknown task {name!r}; hpsearch knows {known}",
        "use `classify` or `regress` for your own HDF5 file, or give `objective_file:` "
        "with your own training code",
    )


def custom_task(name: str, objective: ModuleType, objective_ref: str) -> Task:
    """A task defined by a study's own objective file.

    The file's ``METRICS`` are its metrics. ``DIRECTIONS`` (``{"val_mse": "minimize"}``)
    says which way a metric is better, for the checks of a study's objectives; names hpsearch
    recognises (``*loss``, ``*accuracy``, the costs) need none. ``TARGET`` is
    ``"classification"`` (the default) or ``"regression"``.
    """
    declared: Mapping[str, Any] = getattr(objective, "DIRECTIONS", {}) or {}
    reported = [*objective.METRICS, "train_seconds"]
    metrics: dict[str, Direction | None] = {
        metric: declared.get(metric) or _guess_direction(metric) for metric in reported
    }
    return Task(
        name=name,
        description=f"defined by {objective_ref}",
        target=getattr(objective, "TARGET", "classification"),
        x_key="waveforms",
        y_key="labels",
        objective=objective_ref,
        metrics=metrics,
        primary=reported[0],
        table_metrics=tuple(
            m
            for m in ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_seconds")
            if m in metrics
        ),
    )


def _guess_direction(metric: str) -> Direction | None:
    """Which way a metric with a well-known name is better; None when the name says nothing."""
    base = metric.removeprefix("val_").removeprefix("test_")
    if base in ("loss", "mae", "mse", "rmse") or base.endswith("_loss"):
        return "minimize"
    if base in ("accuracy", "explained_variance", "r2", "auc") or base.endswith("accuracy"):
        return "maximize"
    return COST_METRICS.get(metric)
