"""The shared training loop (hpsearch.training.fit_and_report) on a tiny model and real events.

One ``model.fit`` runs all epochs; a callback reports each epoch. These tests pin the semantics
the per-epoch loop it replaced had: what is reported when, what ``train_seconds`` counts, which
reader epoch each training epoch reads, and that a NaN loss fails the trial at once.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpsearch.data import BatchReader
from hpsearch.objective import DataRef, TrialContext, TrialFailed

EPOCHS = 3
BATCH = 64
PER_EPOCH = {"loss", "accuracy", "val_loss", "val_accuracy", "epoch", "train_seconds"}
PER_EPOCH |= {"epoch_seconds"}
LAST_ONLY = {"test_loss", "test_accuracy", "n_params", "inference_us_per_event", "complete"}


def scaled(x: np.ndarray) -> np.ndarray:
    return x / 1000.0


@pytest.fixture
def data(xgamma_file: Path) -> DataRef:
    return DataRef.from_file(
        str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=3
    )


def tiny_model(n_samples: int, learning_rate: float = 1e-3) -> Any:
    """A 34-parameter network: the loop is under test, not the model."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((n_samples, 1)),
            keras.layers.Conv1D(4, 5, strides=4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(
    data: DataRef,
    report: Callable[[dict[str, Any]], None],
    *,
    transform: Callable[[np.ndarray], np.ndarray] = scaled,
    readers: tuple[BatchReader, BatchReader, BatchReader] | None = None,
) -> dict[str, Any]:
    from hpsearch.training import fit_and_report

    train_r, val_r, test_r = readers or data.readers(BATCH, seed=5)
    ctx = TrialContext(number=0, params={}, seed=5, epochs=EPOCHS, data=data, report=report)
    model = tiny_model(data.info().event_shape[0])
    return fit_and_report(ctx, model, train_r, val_r, test_r, transform=transform)


def test_one_report_per_epoch_and_the_test_metrics_only_in_the_last(data: DataRef) -> None:
    reports: list[dict[str, Any]] = []
    last = train(data, reports.append)

    assert [r["epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    assert last is reports[-1]
    for report in reports[:-1]:
        assert set(report) == PER_EPOCH
    assert set(reports[-1]) == PER_EPOCH | LAST_ONLY
    assert reports[-1]["complete"] is True
    assert reports[-1]["n_params"] == 34
    assert 0.0 <= reports[-1]["test_accuracy"] <= 1.0
    seconds = [r["train_seconds"] for r in reports]
    assert all(b > a for a, b in itertools.pairwise(seconds)), seconds
    for i, report in enumerate(reports):
        epochs_so_far = sum(r["epoch_seconds"] for r in reports[: i + 1])
        assert report["train_seconds"] == pytest.approx(epochs_so_far, rel=1e-12)
        assert report["epoch_seconds"] > 0
        assert all(math.isfinite(v) for v in report.values())


def test_train_seconds_leave_out_the_validation_and_test_passes(
    data: DataRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation and test batches take 0.3 s each to read here; none of it is training."""
    delay = 0.3
    train_r, val_r, test_r = data.readers(BATCH, seed=5)
    for reader in (val_r, test_r):
        slow_read = reader.batch

        def slow(index: int, read: Callable[..., Any] = slow_read) -> Any:
            time.sleep(delay)
            return read(index)

        monkeypatch.setattr(reader, "batch", slow)
    stamps: list[float] = []
    reports: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any]) -> None:
        stamps.append(time.perf_counter())
        reports.append(metrics)

    started = time.perf_counter()
    train(data, report, readers=(train_r, val_r, test_r))

    gaps = np.diff([started, *stamps])
    untimed = gaps - np.array([r["epoch_seconds"] for r in reports])
    # Every epoch validates (one batch of 256 events: 90 of them), the last one also tests;
    # in epoch 1 Keras also reads a batch for its shapes, after training and before testing.
    assert untimed[0] >= 2 * delay
    assert all(u >= delay for u in untimed[1:-1])
    assert untimed[-1] >= 2 * delay
    assert reports[-1]["train_seconds"] < gaps.sum() - (EPOCHS + 2) * delay


def test_training_epoch_e_reads_reader_epoch_e_once(data: DataRef) -> None:
    """As the per-epoch loop did (its shape-inference re-reads aside), with fit(shuffle=False)."""
    train_r, val_r, test_r = data.readers(BATCH, seed=5)
    reads: list[tuple[int, int, np.ndarray]] = []
    read = train_r.batch

    def recording(index: int) -> Any:
        x, y = read(index)
        reads.append((train_r.epoch, index, x))
        return x, y

    train_r.batch = recording  # type: ignore[method-assign]
    marks: list[int] = []
    train(data, lambda metrics: marks.append(len(reads)), readers=(train_r, val_r, test_r))

    assert train_r.epoch == EPOCHS
    n_batches = len(train_r)
    fresh = BatchReader(train_r.source, data.split().train, BATCH, shuffle=True, seed=5)
    segments = np.split(np.arange(len(reads)), marks[:-1])
    assert marks[-1] == len(reads)
    for epoch, segment in enumerate(segments):
        indices = [reads[i][1] for i in segment]
        if epoch == 0:
            # Keras reads the first two batches once for their shapes, before training.
            assert indices[:2] == [0, 1]
            segment, indices = segment[2:], indices[2:]
        assert indices == list(range(n_batches)), f"epoch {epoch + 1} read {indices}"
        fresh.set_epoch(epoch)
        for i in segment:
            reader_epoch, index, x = reads[i]
            assert reader_epoch == epoch
            np.testing.assert_array_equal(x, fresh.batch(index)[0])
    first_batches = [reads[segments[e][-n_batches]][2] for e in range(EPOCHS)]
    assert not np.array_equal(first_batches[0], first_batches[1])
    assert not np.array_equal(first_batches[1], first_batches[2])


def test_a_nan_loss_fails_the_trial_after_its_first_epoch_without_a_report(
    data: DataRef,
) -> None:
    train_r, val_r, test_r = data.readers(BATCH, seed=5)
    reports: list[dict[str, Any]] = []

    def poison(x: np.ndarray) -> np.ndarray:
        return np.full_like(x, np.inf)

    with pytest.raises(TrialFailed, match="training loss became nan in epoch 1"):
        train(data, reports.append, transform=poison, readers=(train_r, val_r, test_r))
    assert reports == []
    assert train_r.epoch == 1, "training went on after the NaN epoch"


def test_a_budget_below_one_epoch_is_refused(data: DataRef) -> None:
    from hpsearch.training import fit_and_report

    train_r, val_r, test_r = data.readers(BATCH, seed=5)
    ctx = TrialContext(number=0, params={}, seed=5, epochs=0, data=data)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit_and_report(ctx, tiny_model(8), train_r, val_r, test_r)
