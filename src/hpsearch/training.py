"""The epoch loop every Keras objective shares: train, validate, report, and test at the end.

Why a hand-written loop instead of one ``model.fit(epochs=E)``: the scheduler may stop a trial
after any epoch, so each epoch's metrics must leave the trial as soon as they exist; the last
epoch's report must already carry the test metrics (a scheduler that stops a trial at its
budget would otherwise cut the extra report off); and ``train_seconds`` must count training
alone, without validation or test passes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpsearch.data import BatchReader, keras_dataset
from hpsearch.objective import TrialContext, TrialFailed

if TYPE_CHECKING:
    import keras
    import numpy as np


def fit_and_report(
    ctx: TrialContext,
    model: keras.Model,
    train: BatchReader,
    val: BatchReader,
    test: BatchReader,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train ``model`` for ``ctx.epochs`` epochs, reporting after each; return the last report.

    The model must be compiled with an ``accuracy``-style metric (its name is taken as is).

    Raises:
        TrialFailed: The training loss became NaN or infinite.
    """
    train_data = keras_dataset(train, transform=transform)
    val_data = keras_dataset(val, transform=transform)
    train_seconds = 0.0
    last: dict[str, Any] = {}
    for epoch in range(1, ctx.epochs + 1):
        started = time.perf_counter()
        fitted = model.fit(train_data, epochs=1, verbose=0, shuffle=False)
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        metrics: dict[str, Any] = {k: float(v[-1]) for k, v in fitted.history.items()}
        if not math.isfinite(metrics.get("loss", math.nan)):
            raise TrialFailed(f"training loss became {metrics.get('loss')} in epoch {epoch}")
        scores = model.evaluate(val_data, verbose=0, return_dict=True)
        metrics.update({f"val_{k}": float(v) for k, v in scores.items()})
        metrics.update(epoch=epoch, train_seconds=train_seconds, epoch_seconds=epoch_seconds)
        if epoch == ctx.epochs:
            test_data = keras_dataset(test, transform=transform)
            scores = model.evaluate(test_data, verbose=0, return_dict=True)
            metrics.update({f"test_{k}": float(v) for k, v in scores.items()})
            metrics.update(n_params=int(model.count_params()), complete=True)
        ctx.report(metrics)
        last = metrics
    return last
