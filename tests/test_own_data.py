"""A user's own HDF5 file, no code: the generic ``classify`` and ``regress`` tasks.

The files here are made the way a physicist would make theirs with h5py: inputs, targets and
a split (a dataset of part labels, or a group per event), nothing hpsearch-specific.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import optuna
import pytest
import yaml
from rich.console import Console

from hpsearch.cli import main
from hpsearch.errors import InputError
from hpsearch.objective import DataRef, TrialContext
from hpsearch.prepare import prepare
from hpsearch.spec import load_study
from hpsearch.tasks import generic

QUIET = Console(stderr=True, quiet=True)


def series_file(path: Path, n: int = 240, length: int = 32) -> Path:
    """Three classes of noisy sines (frequency by class), split by a dataset of part names.

    Labels are 1..3, as many physicists' files number classes; the study's class_names says
    so. Parts: every 5th event test, every 5th+1 val, the rest train.
    """
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3 + 1
    t = np.arange(length)
    x = np.sin(2 * np.pi * labels[:, None] * t / length) + 0.3 * rng.normal(size=(n, length))
    parts = np.array([b"test", b"val", b"train", b"train", b"train"])[np.arange(n) % 5]
    with h5py.File(path, "w") as f:
        f["x"] = x.astype(np.float32)
        f["y"] = labels.astype(np.int16)
        f["part"] = parts
    return path


def maps_file(path: Path, n: int = 200) -> Path:
    """8x8 maps of one bright blob; targets its (row, col); a background model per event."""
    rng = np.random.default_rng(1)
    centre = rng.uniform(1.5, 6.5, size=(n, 2))
    grid = np.arange(8)
    rows = np.exp(-0.5 * (grid[None, :] - centre[:, :1]) ** 2)
    cols = np.exp(-0.5 * (grid[None, :] - centre[:, 1:]) ** 2)
    maps = rows[:, :, None] * cols[:, None, :] + 0.05 * rng.normal(size=(n, 8, 8))
    with h5py.File(path, "w") as f:
        f["maps"] = maps[..., None].astype(np.float32)
        f["centre"] = centre.astype(np.float32)
        f["background"] = np.array(["a", "b", "c", "d"], dtype=object)[np.arange(n) % 4].astype(
            "S1"
        )
        f.attrs["target_names"] = json.dumps(["row", "col"])
    return path


def study_file(project: Path, raw: dict[str, Any]) -> Path:
    path = project / "studies" / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def classify_study(project: Path, **data: Any) -> dict[str, Any]:
    return {
        "name": "sines",
        "task": "classify",
        "seed": 3,
        "data": {
            "path": str(series_file(project / "sines.h5")),
            "class_names": ["none", "low", "mid", "high"],
            "split": {"labels": "part"},
            **data,
        },
        "searcher": {"type": "random"},
        "scheduler": {"type": "fifo"},
        "budget": {"trials": 2, "epochs": 2},
        "storage": "sqlite:///results/own.db",
    }


def regress_study(project: Path, **data: Any) -> dict[str, Any]:
    return {
        "name": "blobs",
        "task": "regress",
        "seed": 4,
        "data": {
            "path": str(maps_file(project / "blobs.h5")),
            "x_key": "maps",
            "y_key": "centre",
            "groups": {"key": "background", "train": ["a", "b"], "val": ["c"], "test": ["d"]},
            **data,
        },
        "searcher": {"type": "random"},
        "scheduler": {"type": "fifo"},
        "budget": {"trials": 2, "epochs": 2},
        "storage": "sqlite:///results/own.db",
    }


def events(blocks: np.ndarray) -> np.ndarray:
    return np.sort(np.concatenate([np.arange(a, b) for a, b in blocks]))


# -- before any trial ------------------------------------------------------------------------


def test_a_predefined_split_is_used_exactly_as_the_file_gives_it(project: Path) -> None:
    prepared = prepare(load_study(study_file(project, classify_study(project))), QUIET)
    split = prepared.data.split()
    n = np.arange(240)
    assert np.array_equal(events(split.test), n[n % 5 == 0])
    assert np.array_equal(events(split.val), n[n % 5 == 1])
    assert np.array_equal(events(split.train), n[n % 5 >= 2])
    assert prepared.info.n_classes == 4  # class_names: labels 1..3 are fine, class 0 is absent
    assert prepared.task.name == "classify"


def test_a_split_by_group_tests_on_groups_never_trained_on(project: Path) -> None:
    prepared = prepare(load_study(study_file(project, regress_study(project))), QUIET)
    split = prepared.data.split()
    n = np.arange(200)
    assert np.array_equal(events(split.train), n[n % 4 < 2])
    assert np.array_equal(events(split.val), n[n % 4 == 2])
    assert np.array_equal(events(split.test), n[n % 4 == 3])
    info = prepared.info
    assert (info.target, info.target_shape, info.target_names) == (
        "regression",
        (2,),
        ("row", "col"),
    )


def test_labels_from_1_without_class_names_are_refused_before_anything_runs(
    project: Path, capsys: Any
) -> None:
    raw = classify_study(project)
    del raw["data"]["class_names"]
    path = study_file(project, raw)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "class 0" in err and "sines.h5" in err
    assert not (project / "results" / "own.db").exists()


def test_the_default_space_keeps_the_families_that_read_the_data(project: Path) -> None:
    console = Console(stderr=True, record=True, width=200)
    prepared = prepare(load_study(study_file(project, regress_study(project))), console)
    assert prepared.study.space.choice_options("model") == ("resnet", "cnn")
    assert "lstm, lstm_fcn cannot read them" in console.export_text()
    raw = classify_study(project)
    series = prepare(load_study(study_file(project, raw)), QUIET)
    assert series.study.space.choice_options("model") == ("resnet", "cnn", "lstm", "lstm_fcn")


def test_a_users_space_with_a_family_that_cannot_read_the_data_is_refused(project: Path) -> None:
    space = project / "search_spaces" / "mine.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "params": {
                    "batch_size": 16,
                    "optimizer": {"name": "adam", "learning_rate": 0.01},
                    "model": {
                        "type": "choice",
                        "options": {
                            "cnn": {"layers": 2, "filters": 4, "kernel_size": 3},
                            "lstm": {"units": 4},
                        },
                    },
                }
            }
        )
    )
    raw = regress_study(project)
    raw["space"] = str(space)
    with pytest.raises(InputError) as info:
        prepare(load_study(study_file(project, raw)), QUIET)
    assert info.value.key == "params.model.options.lstm"
    assert "resnet, cnn" in info.value.fix


@pytest.mark.parametrize(("budget", "serve"), [(0, "stream"), (1.0, "memory")])
def test_data_is_served_from_memory_when_it_fits_the_budget(
    project: Path, budget: float, serve: str
) -> None:
    raw = classify_study(project, memory_budget_gb=budget)
    prepared = prepare(load_study(study_file(project, raw)), QUIET)
    assert prepared.data.serve == serve
    assert prepared.provenance()["data"]["serve"] == serve


def test_preparing_a_study_served_from_memory_loads_nothing_in_the_driver(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpsearch.data import _source

    _source.clear_memory_cache()
    loads: list[int] = []
    real = _source.load_into_memory
    monkeypatch.setattr(_source, "load_into_memory", lambda *a: loads.append(1) or real(*a))
    prepared = prepare(load_study(study_file(project, classify_study(project))), QUIET)
    assert prepared.data.serve == "memory"
    assert prepared.input_stats["n_events"] == 144  # statistics read, streamed from the file
    assert loads == []
    with prepared.data.reader("train", 16, shuffle=True, seed=0) as reader:
        reader.batch(0)
    assert loads == [1]  # a trial's reader loads it, once per process
    with prepared.data.reader("val", 16, shuffle=False, seed=0) as reader:
        reader.batch(0)
    assert loads == [1]
    _source.clear_memory_cache()


# -- one trial ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "n_train", "expected"),
    [
        ({"batch_size": 128}, 35, 4),  # 35 series: capped to 8 steps an epoch
        ({"batch_size": 32}, 10_000, 32),
        ({"batch_size": 5}, 3, 1),
        ({"batch_fraction": 0.1}, 1000, 100),
        ({"batch_fraction": 0.001}, 35, 1),
    ],
)
def test_batch_sizes_follow_the_training_sets_size(
    params: dict[str, Any], n_train: int, expected: int
) -> None:
    assert generic.batch_size_for(params, n_train) == expected


def test_explained_variance_is_the_whole_passes_score() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=(50, 2)) * [1.0, 10.0]
    pred = y + rng.normal(size=(50, 2)) * [0.5, 1.0] + [0.3, -2.0]
    metric = generic.explained_variance(2)
    metric.update_state(y[:20], pred[:20])
    metric.update_state(y[20:], pred[20:])
    error = y - pred
    expected = np.mean(1 - error.var(axis=0) / y.var(axis=0))
    assert float(metric.result()) == pytest.approx(expected, rel=1e-4)


def test_a_regression_trial_on_maps_reports_the_tasks_metrics(project: Path) -> None:
    data = DataRef.from_file(
        maps_file(project / "blobs.h5"), "maps", "centre", target="regression", split_seed=1
    )
    reports: list[dict[str, Any]] = []
    params = {
        "model": {"name": "cnn", "layers": 2, "filters": 8, "kernel_size": 3, "pooling": "max"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "batch_size": 16,
    }
    generic.train(TrialContext(0, params, seed=5, epochs=2, data=data, report=reports.append))
    assert [r["epoch"] for r in reports] == [1, 2]
    last = reports[-1]
    for name in ("val_loss", "val_mae", "val_explained_variance", "test_explained_variance"):
        assert np.isfinite(last[name]), name
    assert last["inference_us_per_event"] > 0
    assert last["n_params"] > 0 and last["complete"] is True


# -- the whole path, as the README tells it --------------------------------------------------


def stored(project: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{project}/results/own.db")


@pytest.mark.e2e
def test_hpsearch_run_classifies_a_users_file(project: Path, capsys: Any) -> None:
    assert main(["run", str(study_file(project, classify_study(project)))]) == 0
    study = stored(project, "sines")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2
    assert study.user_attrs["data"]["split_sizes"] == {"train": 144, "val": 48, "test": 48}
    for trial in complete:
        assert trial.user_attrs["test_accuracy"] >= 0
    assert "val_accuracy" in capsys.readouterr().out


@pytest.mark.e2e
def test_hpsearch_run_regresses_a_users_file(project: Path, capsys: Any) -> None:
    assert main(["run", str(study_file(project, regress_study(project)))]) == 0
    study = stored(project, "blobs")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2
    assert [v is not None for v in complete[0].values] == [True, True]
    assert study.user_attrs["objectives"] == ["val_explained_variance", "train_seconds"]
    assert study.user_attrs["data"]["split_sizes"]["test"] == 50
    out = capsys.readouterr().out
    assert "val_explained_variance" in out
