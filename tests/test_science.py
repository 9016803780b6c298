"""Slow tier: on simulated xgamma events, a trained ResNet clearly beats the rise-time cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpsearch.baselines import RiseTimeCut, rise_time_ns
from hpsearch.data import BatchReader, Layout, iterate, make_split
from hpsearch.objective import DataRef, TrialContext, load_objective

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _rise(reader: BatchReader, period: float, pretrigger: int) -> tuple[np.ndarray, np.ndarray]:
    rises, labels = [], []
    for x, y in iterate(reader):
        rises.append(rise_time_ns(x, period, pretrigger))
        labels.append(y)
    return np.concatenate(rises), np.concatenate(labels)


def test_resnet_beats_the_rise_time_cut(tmp_path: Path) -> None:
    from hpsearch.simulate.xgamma import simulate_to_file

    path = simulate_to_file(tmp_path / "x.h5", 6000, seed=3, progress=False)
    data = DataRef(str(path), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=5)
    reports: list[dict[str, Any]] = []
    params = {
        "blocks": 2,
        "filters": 16,
        "kernel_size": 5,
        "downsample": 2,
        "norm": "group",
        "dropout": 0.1,
        "l2": 1e-4,
        "noise_std": 0.05,
        "batch_size": 64,
        "optimizer": {"learning_rate": 3e-3, "decay_rate": 0.7, "decay_steps": 1000},
    }
    ctx = TrialContext(number=0, params=params, seed=1, epochs=8, data=data, report=reports.append)
    load_objective(ROOT / "objectives" / "xgamma.py").train(ctx)
    network = reports[-1]["test_accuracy"]

    info = data.info()
    period = float(info.attrs["sample_period_ns"])
    pretrigger = int(info.attrs["pretrigger_samples"])
    split = make_split(
        info.n_events, seed=data.split_seed, fractions=data.fractions, block_size=data.block_size
    )
    train = BatchReader(path, Layout(), split.train, 1024, shuffle=False, seed=0)
    test = BatchReader(path, Layout(), split.test, 1024, shuffle=False, seed=0)
    cut = RiseTimeCut.fit(*_rise(train, period, pretrigger))
    baseline = cut.accuracy(*_rise(test, period, pretrigger))
    assert 0.70 < baseline < 0.85
    assert network > baseline + 0.05, (network, baseline)
