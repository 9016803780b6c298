"""The objective of the generic tasks ``classify`` and ``regress``: any HDF5 data, no code.

One trial: build the model family the trial chose for the data's input shape (a channel axis
is added to ``(N, L)`` series), normalise the inputs with the study's statistics, train with
the trial's optimizer and schedule, and report every epoch (:func:`~hpsearch.training.
fit_and_report`).

Parameters, as the default space (``hpsearch/tasks/spaces/generic.yaml``) draws them:
``model`` (a family of :data:`hpsearch.models.FAMILIES` with its parameters),
``regularisation`` (``dropout``, ``l2``, ``noise_std``), ``optimizer``, ``lr_schedule``
(optional; constant if absent) and ``batch_size`` or ``batch_fraction`` (see
:func:`batch_size_for`).

Normalisation: each input channel (the last axis; the single value of a ``(N, L)`` series) is
shifted and scaled by the mean and standard deviation of the first :data:`STATS_EVENTS`
training events, once per study (:func:`input_stats`). Regression targets are standardised the
same way, per target, so that targets of different units weigh alike in the mean squared error;
``loss`` and ``mae`` are then in units of each target's standard deviation, and the explained
variance (the seed's score for air-shower reconstruction) does not depend on units at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.objective import TrialContext

if TYPE_CHECKING:
    import keras

    from hpsearch.objective import DataRef

#: What this objective reports, for both tasks (each task's own metrics are a subset).
METRICS = (
    "loss",
    "val_loss",
    "test_loss",
    "accuracy",
    "val_accuracy",
    "test_accuracy",
    "mae",
    "val_mae",
    "test_mae",
    "explained_variance",
    "val_explained_variance",
    "test_explained_variance",
    "train_seconds",
    "epoch_seconds",
    "n_params",
    "inference_us_per_event",
)

#: Training events the input statistics are taken from, at most.
STATS_EVENTS = 4096
#: Fewest optimizer steps per epoch a ``batch_size`` is cut down to allow.
MIN_STEPS_PER_EPOCH = 8


def batch_size_for(params: Mapping[str, Any], n_train: int) -> int:
    """The trial's batch size, stated in the space relative to the training set's size.

    ``batch_fraction`` (a float in (0, 1]) is that share of the training events.
    ``batch_size`` is taken as given but capped so that an epoch has at least
    :data:`MIN_STEPS_PER_EPOCH` steps: on 35 training series a batch of 128 would make one
    step an epoch, and no schedule stated in steps would ever act.

    Raises:
        ValueError: Neither key, or a value out of range.
    """
    if "batch_fraction" in params:
        fraction = float(params["batch_fraction"])
        if not 0 < fraction <= 1:
            raise ValueError(f"batch_fraction must be in (0, 1], got {fraction}")
        return max(1, round(fraction * n_train))
    if "batch_size" not in params:
        raise ValueError(f"parameters need batch_size or batch_fraction, got keys {sorted(params)}")
    size = int(params["batch_size"])
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    return max(1, min(size, n_train // MIN_STEPS_PER_EPOCH))


def input_stats(data: DataRef) -> dict[str, Any]:
    """Per-channel input mean and std (and per-target ones for regression), once per study.

    Taken from the first :data:`STATS_EVENTS` training events in split order: a fixed random
    sample of the training part that depends on the split alone, never on a trial.
    """
    return channel_stats(data)


#: An elementwise input transform applied before the standardisation (a task's ``log1p`` of
#: heavy-tailed signals, a variance-stabilising square root of photon counts).
Preprocess = Callable[[np.ndarray], np.ndarray]
#: See ``score_predictions`` of :func:`hpsearch.training.fit_and_report`; here it receives the
#: predictions in the targets' own units.
ScorePredictions = Callable[[str, np.ndarray], dict[str, float]]


def channel_stats(data: DataRef, preprocess: Preprocess | None = None) -> dict[str, Any]:
    """:func:`input_stats` of the inputs after ``preprocess``.

    Returns:
        ``x_mean``, ``x_std`` (one per input channel), ``y_mean``, ``y_std`` (one per target;
        empty for classification) and ``n_events``.
    """
    from hpsearch.data import iterate

    info = data.info()
    channels = 1 if len(info.event_shape) == 1 else info.event_shape[-1]
    total = np.zeros(channels)
    square = np.zeros(channels)
    count = 0
    ys = []
    with data.reader(
        "train", 1024, shuffle=False, seed=0, max_events=STATS_EVENTS, stream=True
    ) as reader:
        for x, y in iterate(reader):
            if preprocess is not None:
                x = preprocess(x)
            values = x.reshape(-1, channels).astype(np.float64)
            total += values.sum(axis=0)
            square += (values**2).sum(axis=0)
            count += len(values)
            ys.append(np.asarray(y, dtype=np.float64).reshape(len(y), -1))
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean**2, 0.0))
    stats: dict[str, Any] = {
        "x_mean": mean.tolist(),
        "x_std": np.where(std > 0, std, 1.0).tolist(),
        "y_mean": [],
        "y_std": [],
        "n_events": int(sum(len(y) for y in ys)),
    }
    if info.target == "regression":
        targets = np.concatenate(ys)
        y_std = targets.std(axis=0)
        stats["y_mean"] = targets.mean(axis=0).tolist()
        stats["y_std"] = np.where(y_std > 0, y_std, 1.0).tolist()
    return stats


def explained_variance(n_targets: int) -> keras.metrics.Metric:
    """A Keras metric: the explained variance score, averaged over targets with equal weight.

    ``1 - Var(y - y_pred) / Var(y)`` per target (scikit-learn's ``explained_variance_score``
    with ``multioutput="uniform_average"``), accumulated over all batches of a pass from sums,
    so that it is the score of the whole pass, not a mean of per-batch scores.
    """
    import keras
    from keras import ops

    class ExplainedVariance(keras.metrics.Metric):
        def __init__(self, name: str = "explained_variance", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            # Created here, not on the first batch: Keras traces update_state into a graph,
            # where a new variable cannot be made.
            self._sums = [
                self.add_variable(shape=(n_targets,), initializer="zeros", name=n)
                for n in ("n", "y", "yy", "e", "ee")
            ]

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
            y_pred = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_pred)[0], -1))
            y_true = ops.reshape(ops.cast(y_true, "float32"), ops.shape(y_pred))
            error = y_true - y_pred
            count = ops.ones_like(y_true)
            for variable, value in zip(
                self._sums, (count, y_true, y_true**2, error, error**2), strict=True
            ):
                variable.assign_add(ops.sum(value, axis=0))

        def result(self) -> Any:
            n, y, yy, e, ee = self._sums
            var_y = yy / n - (y / n) ** 2
            var_e = ee / n - (e / n) ** 2
            return ops.mean(1.0 - var_e / ops.maximum(var_y, 1e-12))

        def reset_state(self) -> None:
            for variable in self._sums:
                variable.assign(ops.zeros_like(variable))

    return ExplainedVariance()


def train(ctx: TrialContext) -> None:
    """Train and score one model of the trial's family on the study's data."""
    train_model(ctx)


def train_model(
    ctx: TrialContext,
    *,
    preprocess: Preprocess | None = None,
    score_predictions: ScorePredictions | None = None,
) -> None:
    """Train and score one model; the seed tasks' objectives call this with their own hooks.

    Args:
        ctx: The trial.
        preprocess: Elementwise transform of the inputs before standardisation; the study's
            input statistics must have been taken after it (:func:`channel_stats`).
        score_predictions: Task metrics from the predictions of a whole part, given in the
            targets' units (regression predictions are de-standardised first).
    """
    import keras

    from hpsearch.models import Head, build_model, build_optimizer
    from hpsearch.training import fit_and_report

    params = ctx.params
    keras.utils.set_random_seed(ctx.seed)
    info = ctx.data.info()
    stats: Mapping[str, Any] = ctx.input_stats or channel_stats(ctx.data, preprocess)
    n_train = ctx.data.split().n_events("train")
    if ctx.data.max_events is not None:
        n_train = min(n_train, ctx.data.max_events)
    for group in ("model", "optimizer"):
        if group not in params:
            raise ValueError(f"parameters need a `{group}` group, got keys {sorted(params)}")
    series = len(info.event_shape) == 1
    input_shape = (*info.event_shape, 1) if series else info.event_shape
    x_mean = np.asarray(stats["x_mean"], dtype=np.float32)
    x_std = np.asarray(stats["x_std"], dtype=np.float32)

    def normalise(x: np.ndarray) -> np.ndarray:
        if preprocess is not None:
            x = preprocess(x)
        if series:
            out: np.ndarray = (x - x_mean[0]) / x_std[0]
        else:
            out = (x - x_mean) / x_std
        return out.astype(np.float32)

    regression = info.target == "regression"
    standardise = None
    if regression:
        y_mean = np.asarray(stats["y_mean"], dtype=np.float32)
        y_std = np.asarray(stats["y_std"], dtype=np.float32)

        def standardise(y: np.ndarray) -> np.ndarray:
            shaped = y.reshape(len(y), -1)
            result: np.ndarray = ((shaped - y_mean) / y_std).astype(np.float32)
            return result

        head = Head("regression", info.n_targets)
    else:
        head = Head("classification", info.n_classes)

    scorer = score_predictions
    if score_predictions is not None and regression:

        def scorer(part: str, predictions: np.ndarray) -> dict[str, float]:
            return score_predictions(part, predictions * y_std + y_mean)

    batch = batch_size_for(params, n_train)
    train_reader, val_reader, test_reader = ctx.data.readers(batch, seed=ctx.seed)
    try:
        model = build_model(
            params["model"],
            input_shape=tuple(input_shape),
            head=head,
            regularisation=params.get("regularisation"),
        )
        optimizer, callbacks = build_optimizer(
            params["optimizer"],
            params.get("lr_schedule"),
            steps_per_epoch=len(train_reader),
            epochs=ctx.epochs,
        )
        if regression:
            model.compile(
                optimizer=optimizer, loss="mse", metrics=["mae", explained_variance(info.n_targets)]
            )
        else:
            model.compile(
                optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
            )
        fit_and_report(
            ctx,
            model,
            train_reader,
            val_reader,
            test_reader,
            transform=normalise,
            target_transform=standardise,
            add_channel_axis=series,
            callbacks=callbacks,
            score_predictions=scorer,
        )
    finally:
        for reader in (train_reader, val_reader, test_reader):
            reader.close()
