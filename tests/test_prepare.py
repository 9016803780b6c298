"""What prepare() hands to every trial: the file's inspection and the study's input statistics.

The driver inspects the file once (every label scanned); a trial's DataRef carries that result,
so a trial's set-up opens no label scan of its own, and the objective's input statistics are
computed once from the training split and shared by all trials.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from hpsearch.data import _files as _hdf5
from hpsearch.errors import InputError
from hpsearch.objective import DataRef
from hpsearch.prepare import PreparedStudy, compute_input_stats, prepare
from hpsearch.spec import load_study


@pytest.fixture
def prepared(write_study: Callable[..., Path], xgamma_file: Path) -> PreparedStudy:
    path = write_study(data__path=str(xgamma_file), storage="sqlite:///results/p.db")
    return prepare(load_study(path), Console(stderr=True, quiet=True))


def count_label_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    scan = _hdf5._scan_labels

    def counting(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        return scan(*args, **kwargs)

    monkeypatch.setattr(_hdf5, "_scan_labels", counting)
    return calls


def test_a_trial_set_up_from_prepare_scans_no_labels(
    prepared: PreparedStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = count_label_scans(monkeypatch)
    data: DataRef = pickle.loads(pickle.dumps(prepared.data))  # as Ray ships it to a worker
    info = data.info()
    split = data.split()
    train, val, test = data.readers(32, seed=1)
    with train, val, test:
        train.batch(0)
        val.batch(0)
    assert scans == []
    assert info == prepared.info
    assert split.n_events("train") == train.n_events == 420
    assert data == prepared.data


def test_a_hand_made_data_ref_still_inspects_the_file(
    xgamma_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = count_label_scans(monkeypatch)
    data = DataRef.from_file(
        str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, split_seed=3
    )
    assert data.info().n_events == 600
    assert len(scans) == 1


def test_the_data_ref_stays_small(prepared: PreparedStudy) -> None:
    assert len(pickle.dumps(prepared.data)) < 8192


def test_prepare_computes_the_objective_input_stats_from_the_training_split(
    prepared: PreparedStudy,
) -> None:
    stats = prepared.input_stats
    assert stats == prepared.objective.input_stats(prepared.data)
    assert stats["n_events"] == prepared.data.split().n_events("train")
    assert json.loads(json.dumps(stats)) == stats


def objective(hook: Callable[[DataRef], Any] | None) -> ModuleType:
    module = ModuleType("fake_objective")
    if hook is not None:
        module.input_stats = hook  # type: ignore[attr-defined]
    return module


def test_input_stats_without_a_hook_are_empty(xgamma_file: Path) -> None:
    data = DataRef.from_file(str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, 3)
    assert compute_input_stats(objective(None), data, "obj.py") == {}


def test_input_stats_become_plain_json(xgamma_file: Path) -> None:
    data = DataRef.from_file(str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, 3)
    hook = objective(lambda d: {"scale": np.float32(2.5), "shape": (1, 2)})
    stats = compute_input_stats(hook, data, "obj.py")
    assert stats == {"scale": 2.5, "shape": [1, 2]}
    assert type(stats["scale"]) is float


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({"scale": float("nan")}, "not finite JSON values"),
        ({"scales": np.array([1.0, np.inf], dtype=np.float32)}, "not finite JSON values"),
        ({"scale": object()}, "not finite JSON values"),
        ([1.0], "returned list, not a dict"),
        ({1: 2.0}, "not a dict with str keys"),
    ],
)
def test_bad_input_stats_stop_the_study(xgamma_file: Path, result: Any, problem: str) -> None:
    data = DataRef.from_file(str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, 3)
    with pytest.raises(InputError, match=problem) as caught:
        compute_input_stats(objective(lambda d: result), data, "obj.py")
    assert caught.value.key == "input_stats"
    assert caught.value.exit_code == 2


def test_a_failing_input_stats_hook_stops_the_study(xgamma_file: Path) -> None:
    data = DataRef.from_file(str(xgamma_file), "waveforms", "labels", (0.7, 0.15, 0.15), 32, 3)

    def broken(d: DataRef) -> dict[str, Any]:
        raise ZeroDivisionError("no events")

    with pytest.raises(InputError, match="ZeroDivisionError: no events"):
        compute_input_stats(objective(broken), data, "obj.py")


def test_an_input_stats_that_is_no_function_is_refused(tmp_path: Path) -> None:
    from hpsearch.objective import load_objective

    path = tmp_path / "bad_stats.py"
    path.write_text("METRICS = ('train_seconds',)\ninput_stats = 3\ndef train(ctx):\n    pass\n")
    with pytest.raises(InputError, match="`input_stats` is a int, not a function"):
        load_objective(path)
