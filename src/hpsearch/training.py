"""The training loop every Keras objective shares: one ``model.fit`` that reports every epoch.

Why one ``fit`` over all epochs and a callback, not a loop of ``fit(epochs=1)`` and
``evaluate``: every ``fit`` or ``evaluate`` call builds Keras's data adapter and ``tf.data``
pipeline anew and reads batches again to infer their shapes, which a per-epoch loop paid twice
an epoch. One ``fit`` builds them once (``benchmarks/fit_loop.py`` measures the difference).

What the callback keeps from the hand-written loop it replaced:

* Each epoch's metrics leave the trial as soon as the epoch ends (``ctx.report``), because the
  scheduler may stop a trial after any epoch.
* The last epoch's report already carries the test metrics, the parameter count, the inference
  time per event and ``complete=True``: a scheduler that stops a trial when it reaches its
  budget would cut off a separate, later report.
* ``train_seconds`` counts training alone: the validation pass inside ``fit`` (timed between
  ``on_test_begin`` and ``on_test_end``), the reports and the test evaluation are left out.
* A NaN or infinite training loss ends the trial at the end of that epoch, before it reports
  (``fit`` stops there; :class:`~hpsearch.objective.TrialFailed` is raised once it returns).
* ``fit(shuffle=False)``: the batch order comes from the reader's seed alone, and training
  epoch ``e`` reads the reader's epoch ``e - 1`` (the reader counts from 0), as
  :func:`hpsearch.data.keras_dataset` arranges.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
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
    target_transform: Callable[[np.ndarray], np.ndarray] | None = None,
    add_channel_axis: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    score_predictions: Callable[[str, np.ndarray], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train ``model`` for ``ctx.epochs`` epochs in one ``fit``, reporting after each.

    Every report holds the training metrics (``loss``, ...), the validation metrics
    (``val_loss``, ...), ``epoch`` (from 1), ``epoch_seconds`` and the cumulative
    ``train_seconds``; the last one also ``test_*`` metrics, ``n_params``,
    ``inference_us_per_event`` (see :func:`inference_us_per_event`) and ``complete=True``.
    The first epoch's seconds include the one-time set-up inside ``fit`` (data adapter, graph
    tracing), as a trial's training time should.

    Args:
        ctx: The trial: its epoch budget and its ``report`` channel.
        model: A compiled model; its metric names (``accuracy``, ...) are reported as they are.
        train: Reader of the training split (shuffled by its own seed).
        val: Reader of the validation split.
        test: Reader of the test split, evaluated once after the last epoch.
        transform: Applied to every input batch (e.g. a normalisation).
        target_transform: Applied to every target batch (e.g. standardised regression
            targets); the metrics are then in the transformed units.
        add_channel_axis: Give ``(batch, n)`` series a channel axis, as 1-D convolutions and
            recurrent layers read them; False for inputs that have channels.
        callbacks: More Keras callbacks (a plateau schedule's, say). They run before the
            epoch is reported, so what they add to the epoch's logs (``learning_rate``) is
            reported too.
        score_predictions: Task metrics that no streaming Keras metric can give (a 68%
            quantile of angular errors, an error per background model): called with the part
            (``"val"`` after every epoch, ``"test"`` after the last) and the model's
            predictions for that part's events in reader order; what it returns is reported
            with the part's prefix. Costs one more prediction pass over the part.

    Returns:
        The last report. When ``ctx.save_model`` is set and training completed, the model is
        saved there too (``model.save``), just before the last report.

    Raises:
        TrialFailed: The training loss became NaN or infinite.
        ValueError: ``ctx.epochs`` is below 1.
    """
    if ctx.epochs < 1:
        raise ValueError(f"ctx.epochs must be >= 1, got {ctx.epochs}")

    adapt = functools.partial(
        keras_dataset,
        transform=transform,
        target_transform=target_transform,
        add_channel_axis=add_channel_axis,
    )

    def predicted(part: str, reader: BatchReader) -> dict[str, Any]:
        if score_predictions is None:
            return {}
        predictions = model.predict(adapt(reader), verbose=0)
        scores = score_predictions(part, predictions)
        return {f"{part}_{name}": float(value) for name, value in scores.items()}

    def score_test() -> dict[str, Any]:
        test_data = adapt(test)
        scores = model.evaluate(test_data, verbose=0, return_dict=True)
        extra: dict[str, Any] = {f"test_{k}": float(v) for k, v in scores.items()}
        extra.update(predicted("test", test))
        extra.update(
            n_params=int(model.count_params()),
            inference_us_per_event=inference_us_per_event(model, test_data[0][0]),
            complete=True,
        )
        if ctx.save_model is not None:
            # Before the last report, not after fit: the scheduler stops the trial at its
            # last report (ASHA at max_t), and Tune may end the run before fit returns.
            model.save(ctx.save_model)
        return extra

    reports = _EpochReports(ctx, score_test, lambda: predicted("val", val))

    train_data = adapt(train)
    # Keras builds the validation pipeline (reading batches for their shapes) after the first
    # epoch's training but before on_test_begin: the first read stops that epoch's clock.
    val_data = adapt(val, before_read=reports.validation_read)
    reports.start_clock()
    model.fit(
        train_data,
        epochs=ctx.epochs,
        validation_data=val_data,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, _as_keras_callback(reports)],
    )
    if reports.failure is not None:
        raise reports.failure
    return reports.last


#: Timed passes of :func:`inference_us_per_event`; the fastest counts.
INFERENCE_REPEATS = 5
#: Fewest events one timed pass of :func:`inference_us_per_event` predicts.
INFERENCE_MIN_EVENTS = 256


def inference_us_per_event(model: keras.Model, batch: np.ndarray) -> float:
    """Microseconds the trained model takes per event to predict, on the trial's device.

    A trigger or on-board classifier is judged by its latency as much as by its accuracy, so
    every trial measures it: the model's compiled predict step on one evaluation batch (tiled
    to at least :data:`INFERENCE_MIN_EVENTS` events), once to build it, then the fastest of
    :data:`INFERENCE_REPEATS` passes, divided by the events. Throughput at that batch size,
    not the latency of a single event, which on a GPU is dominated by the call's overhead.
    """
    import numpy as np

    if len(batch) < INFERENCE_MIN_EVENTS:
        batch = np.concatenate([batch] * -(-INFERENCE_MIN_EVENTS // len(batch)))
    model.predict_on_batch(batch)
    best = math.inf
    for _ in range(INFERENCE_REPEATS):
        started = time.perf_counter()
        model.predict_on_batch(batch)
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / len(batch)


class _EpochReports:
    """Times training without validation, checks the loss and reports each epoch.

    Plain Python, driven by the Keras callback of :func:`_as_keras_callback`, so that its
    bookkeeping reads (and type-checks) without Keras.

    Attributes:
        train_seconds: Training seconds so far, validation and test passes left out.
        last: The last report sent.
        failure: Set when an epoch's loss was not finite; ``fit`` is then stopped at once and
            :func:`fit_and_report` raises it (raising inside ``fit`` would skip Keras's own
            clean-up at the end of training).
    """

    def __init__(
        self,
        ctx: TrialContext,
        score_test: Callable[[], dict[str, Any]],
        score_val: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.ctx = ctx
        self.score_test = score_test
        self.score_val = score_val
        self.train_seconds = 0.0
        self.last: dict[str, Any] = {}
        self.failure: TrialFailed | None = None
        self._started = time.perf_counter()
        self._trained_until: float | None = None
        self._epochs_begun = 0

    def start_clock(self) -> None:
        """Start epoch 1's clock, just before ``fit`` builds its data pipeline."""
        self._started = time.perf_counter()

    def epoch_begin(self) -> None:
        """Start a later epoch's clock (epoch 1's started with :meth:`start_clock`)."""
        if self._epochs_begun:
            self._started = time.perf_counter()
        self._epochs_begun += 1
        self._trained_until = None

    def validation_begin(self) -> None:
        """Stop the epoch's clock: ``fit`` validates after the epoch's last training step."""
        if self._trained_until is None:
            self._trained_until = time.perf_counter()

    def validation_read(self) -> None:
        """A validation batch is being read: in epoch 1 that can precede ``on_test_begin``.

        Only epoch 1 listens: then the validation pipeline does not exist before the epoch's
        training ends, whereas in later epochs a prefetching pipeline could in principle read
        ahead, and ``on_test_begin`` alone marks the end of training.
        """
        if self._epochs_begun == 1:
            self.validation_begin()

    def epoch_end(self, epoch: int, logs: dict[str, Any] | None) -> bool:
        """Check the loss and report the epoch (0-based ``epoch`` as Keras counts).

        Returns:
            Whether training may go on: False when the loss is NaN or infinite, in which
            case :attr:`failure` holds the error and nothing is reported.
        """
        ended = time.perf_counter() if self._trained_until is None else self._trained_until
        epoch_seconds = ended - self._started
        self.train_seconds += epoch_seconds
        number = epoch + 1
        metrics: dict[str, Any] = {k: float(v) for k, v in (logs or {}).items()}
        loss = metrics.get("loss", math.nan)
        if not math.isfinite(loss):
            self.failure = TrialFailed(f"training loss became {loss} in epoch {number}")
            return False
        metrics.update(epoch=number, train_seconds=self.train_seconds, epoch_seconds=epoch_seconds)
        metrics.update(self.score_val())
        if number == self.ctx.epochs:
            metrics.update(self.score_test())
        self.ctx.report(metrics)
        self.last = metrics
        return True


def _as_keras_callback(reports: _EpochReports) -> keras.callbacks.Callback:
    """A Keras callback that forwards fit's epoch and validation events to ``reports``."""
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            reports.epoch_begin()

        def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
            # Only fit's validation pass reaches here; the test evaluation has its own list.
            reports.validation_begin()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if not reports.epoch_end(epoch, logs):
                self.model.stop_training = True

    return EpochReporter()
