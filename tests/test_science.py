"""Slow tier: on simulated xgamma events, a trained ResNet clearly beats the rise-time cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpsearch.baselines import score_rise_time_cut
from hpsearch.objective import DataRef, TrialContext, load_objective

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_resnet_beats_the_rise_time_cut(tmp_path: Path) -> None:
    from hpsearch.simulate.xgamma import simulate_to_file

    path = simulate_to_file(tmp_path / "x.h5", 6000, seed=3, progress=False)
    data = DataRef.from_file(str(path), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=5)
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

    baseline = score_rise_time_cut(data).accuracy
    assert 0.70 < baseline < 0.85
    assert network > baseline + 0.05, (network, baseline)
