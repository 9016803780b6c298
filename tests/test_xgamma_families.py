"""The xgamma objective trains whichever model family a trial chose, and the flat format as before.

End to end on the 600-event fixture for one epoch (seconds each); the checks that need no
training replace ``fit_and_report`` by a stub that records what it was given.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hpsearch.models import Head, build_model, build_resnet1d
from hpsearch.objective import DataRef, TrialContext, load_objective

ROOT = Path(__file__).resolve().parents[1]

REGULARISATION = {"dropout": 0.1, "l2": 1e-4, "noise_std": 0.05}
CNN: dict[str, Any] = {
    "model": {
        "name": "cnn",
        "layers": 2,
        "filters": 4,
        "kernel_size": 3,
        "pooling": "max",
        "downsample": 4,
    },
    "regularisation": REGULARISATION,
    "optimizer": {"name": "adam", "learning_rate": 3e-3},
    "lr_schedule": {"name": "exponential", "decay_rate": 0.9, "decay_steps": 50},
    "batch_size": 64,
}
LSTM: dict[str, Any] = {
    "model": {"name": "lstm", "units": 4, "layers": 1, "bidirectional": False, "downsample": 8},
    "regularisation": {"dropout": 0.2},
    "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    "lr_schedule": {"name": "step", "every_epochs": 1, "factor": 0.5},
    "batch_size": 64,
}
FLAT: dict[str, Any] = {
    "blocks": 1,
    "filters": 4,
    "kernel_size": 3,
    "downsample": 4,
    "norm": "group",
    "dropout": 0.1,
    "l2": 1e-4,
    "noise_std": 0.05,
    "batch_size": 64,
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "decay_rate": 0.9, "decay_steps": 100},
}


@pytest.fixture(scope="module")
def xgamma() -> ModuleType:
    return load_objective(ROOT / "objectives" / "xgamma.py")


@pytest.fixture
def data(xgamma_file: Path) -> DataRef:
    return DataRef.from_file(
        str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=3
    )


def run(xgamma: ModuleType, data: DataRef, params: dict[str, Any]) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    ctx = TrialContext(0, params, seed=7, epochs=1, data=data, report=reports.append)
    xgamma.train(ctx)
    return reports


@pytest.mark.parametrize("params", [CNN, LSTM], ids=["cnn", "lstm"])
def test_a_family_trial_trains_and_reports_complete(
    xgamma: ModuleType, data: DataRef, params: dict[str, Any]
) -> None:
    reports = run(xgamma, data, params)
    last = reports[-1]
    assert last["complete"] is True
    assert math.isfinite(last["val_accuracy"]) and 0.0 <= last["val_accuracy"] <= 1.0
    expected = build_model(
        params["model"],
        input_shape=(data.info().event_shape[0], 1),
        head=Head("classification", 2),
        regularisation=params.get("regularisation"),
    )
    assert last["n_params"] == expected.count_params()


def test_the_flat_format_still_builds_the_resnet(xgamma: ModuleType, data: DataRef) -> None:
    last = run(xgamma, data, FLAT)[-1]
    assert last["complete"] is True
    keys = ("blocks", "filters", "kernel_size", "dropout", "l2", "noise_std", "downsample", "norm")
    expected = build_resnet1d(
        (data.info().event_shape[0], 1), 2, **{key: FLAT[key] for key in keys}
    )
    assert last["n_params"] == expected.count_params()


def fit_stub(captured: dict[str, Any]) -> Any:
    """A stand-in for fit_and_report that records the model and the callbacks it is given."""

    def fit(
        ctx: Any, model: Any, *readers: Any, transform: Any = None, callbacks: Any = ()
    ) -> dict[str, Any]:
        captured["model"] = model
        captured["callbacks"] = list(callbacks)
        return {}

    return fit


def test_the_trial_gets_the_optimizer_and_schedule_it_chose(
    xgamma: ModuleType, data: DataRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, Any] = {}
    monkeypatch.setattr("hpsearch.training.fit_and_report", fit_stub(captured))
    run(xgamma, data, LSTM)
    model = captured["model"]
    assert model.name == "lstm1"
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert (optimizer.momentum, optimizer.nesterov) == (0.9, True)
    steps = len(data.readers(64, seed=7)[0])  # 420 training events: 7 batches of 64
    assert steps == 7
    optimizer.iterations.assign(steps)  # epoch 2 begins: the rate halves
    assert float(optimizer.learning_rate) == pytest.approx(0.025)


def test_plateau_callbacks_reach_fit(
    xgamma: ModuleType, data: DataRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    plateau = {**CNN, "lr_schedule": {"name": "plateau", "factor": 0.5, "patience": 2}}
    captured: dict[str, Any] = {}
    monkeypatch.setattr("hpsearch.training.fit_and_report", fit_stub(captured))
    run(xgamma, data, plateau)
    (callback,) = captured["callbacks"]
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.factor, callback.patience) == (0.5, 2)


def test_a_family_trial_without_an_optimizer_is_refused(xgamma: ModuleType, data: DataRef) -> None:
    params = {key: value for key, value in CNN.items() if key != "optimizer"}
    with pytest.raises(ValueError, match="need an `optimizer` group"):
        run(xgamma, data, params)
