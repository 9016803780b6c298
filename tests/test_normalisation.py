"""The xgamma objective's input normalisation: one scale per study, from its training split.

A scale taken per trial (the median pulse height of one shuffled batch of that trial's reader)
varied with the trial's seed and batch size, so trials differed in more than their parameters.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
import pytest

from hpsearch.data import make_split
from hpsearch.objective import DataRef, TrialContext, load_objective

ROOT = Path(__file__).resolve().parents[1]
PARAMS: dict[str, Any] = {
    "blocks": 1,
    "filters": 4,
    "kernel_size": 3,
    "downsample": 4,
    "norm": "group",
    "dropout": 0.0,
    "l2": 0.0,
    "noise_std": 0.0,
    "batch_size": 32,
    "optimizer": {"learning_rate": 1e-3, "decay_rate": 0.9, "decay_steps": 100},
}


@pytest.fixture(scope="module")
def xgamma() -> ModuleType:
    return load_objective(ROOT / "objectives" / "xgamma.py")


def data_ref(path: Path, split_seed: int = 3) -> DataRef:
    return DataRef.from_file(
        str(path), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=split_seed
    )


def numpy_scale(path: Path, split_seed: int, max_events: int) -> tuple[float, int, int]:
    """The scale computed independently: whole file in memory, split blocks in split order."""
    with h5py.File(path, "r") as file:
        x = np.asarray(file["waveforms"], dtype=np.float64)
        pretrigger = int(file.attrs["pretrigger_samples"])
    split = make_split(len(x), seed=split_seed, fractions=(0.7, 0.15, 0.15), block_size=32)
    events = np.concatenate([x[a:b] for a, b in split.train])[:max_events]
    baseline = events[:, :pretrigger].mean(axis=1, keepdims=True)
    heights = np.abs(events - baseline).max(axis=1)
    return float(np.median(heights)), pretrigger, len(events)


def normaliser(xgamma: ModuleType, ctx: TrialContext, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the objective's train() up to the fit, and return the transform it would train on."""
    captured: dict[str, Any] = {}

    def fake_fit(*args: Any, transform: Any = None, **kwargs: Any) -> dict[str, Any]:
        captured["transform"] = transform
        return {}

    monkeypatch.setattr("hpsearch.training.fit_and_report", fake_fit)
    xgamma.train(ctx)
    return captured["transform"]


def test_trials_with_other_seeds_and_batch_sizes_normalise_alike(
    xgamma: ModuleType, xgamma_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_ref(xgamma_file)
    events = np.random.default_rng(0).normal(0.0, 500.0, size=(4, 256)).astype(np.float32)
    outputs = []
    for seed, batch_size in ((1, 16), (2, 128)):
        params = {**PARAMS, "batch_size": batch_size}
        ctx = TrialContext(number=seed, params=params, seed=seed, epochs=1, data=data)
        outputs.append(normaliser(xgamma, ctx, monkeypatch)(events))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    scale, pretrigger, _ = numpy_scale(xgamma_file, 3, 4096)
    expected = (events - events[:, :pretrigger].mean(axis=1, keepdims=True)) / scale
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-5)


def test_a_trial_uses_the_study_input_stats_it_is_given(
    xgamma: ModuleType, xgamma_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = {"amplitude_scale": 2.0, "pretrigger_samples": 10, "n_events": 1}
    ctx = TrialContext(0, PARAMS, 1, 1, data_ref(xgamma_file), input_stats=stats)
    events = np.arange(2 * 256, dtype=np.float32).reshape(2, 256)
    out = normaliser(xgamma, ctx, monkeypatch)(events)
    np.testing.assert_allclose(out, (events - events[:, :10].mean(axis=1, keepdims=True)) / 2)


def test_input_stats_equal_numpy_on_the_training_events(
    xgamma: ModuleType, xgamma_file: Path
) -> None:
    stats = xgamma.input_stats(data_ref(xgamma_file))
    scale, pretrigger, n_events = numpy_scale(xgamma_file, 3, 4096)
    assert n_events == 420  # 70 % of 600: every training event, no validation or test event
    assert stats == {
        "amplitude_scale": pytest.approx(scale, rel=1e-6),
        "pretrigger_samples": pretrigger,
        "n_events": n_events,
    }


def test_input_stats_of_a_large_split_take_its_first_events_in_split_order(
    xgamma: ModuleType, xgamma_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xgamma, "STATS_EVENTS", 100)
    stats = xgamma.input_stats(data_ref(xgamma_file))
    scale, _, n_events = numpy_scale(xgamma_file, 3, 100)
    assert stats["n_events"] == n_events == 100
    assert stats["amplitude_scale"] == pytest.approx(scale, rel=1e-6)


def test_input_stats_come_from_the_split(xgamma: ModuleType, xgamma_file: Path) -> None:
    same = xgamma.input_stats(data_ref(xgamma_file, split_seed=3))
    assert xgamma.input_stats(data_ref(xgamma_file, split_seed=3)) == same
    other = xgamma.input_stats(data_ref(xgamma_file, split_seed=4))
    assert other["amplitude_scale"] != same["amplitude_scale"]
    assert other["amplitude_scale"] == pytest.approx(numpy_scale(xgamma_file, 4, 4096)[0])
