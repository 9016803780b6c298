"""The seed tasks ta_sd (seed 002) and gce (seed 004): objectives, metrics, baselines, studies.

The simulators' physics is tested in test_simulate_ta_sd.py and test_simulate_gce.py; here the
tasks built on them: the metrics a physicist reads (resolutions beside the standard fit's, the
f_src error per background model), the baselines, and the shipped studies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from hpsearch.cli import main
from hpsearch.data import iterate
from hpsearch.objective import DataRef, TrialContext
from hpsearch.prepare import prepare
from hpsearch.simulate import gce, ta_sd
from hpsearch.spec import load_study
from hpsearch.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(stderr=True, quiet=True)


def objective(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"seed_{name}", ROOT / "objectives" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ta_sd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ta_sd") / "ta_sd.h5"
    config = ta_sd.TaSdConfig.from_dict({"grid_size": 4, "n_bins": 128})
    return ta_sd.simulate_to_file(path, 256, 3, config, progress=False, workers=1)


@pytest.fixture(scope="module")
def gce_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gce") / "gce.h5"
    config = gce.GceConfig.from_dict({"n_pixels": 32})
    return gce.simulate_to_file(path, 256, 4, config, progress=False, workers=1)


def ta_sd_data(path: Path, y_key: str = "targets/fit_error") -> DataRef:
    return DataRef.from_file(path, "x", y_key, target="regression", split_seed=2)


def test_part_rows_come_in_the_order_an_evaluation_reader_serves(ta_sd_file: Path) -> None:
    data = ta_sd_data(ta_sd_file)
    with data.reader("val", 32, shuffle=False, seed=0) as reader:
        served = np.concatenate([y for _, y in iterate(reader)])
    np.testing.assert_array_equal(data.read("targets/fit_error", "val"), served)


def test_ta_sd_network_that_predicts_no_correction_scores_exactly_the_fit(
    ta_sd_file: Path,
) -> None:
    module = objective("ta_sd")
    data = ta_sd_data(ta_sd_file)
    fit = module.fit_resolutions(data, "val")
    n_val = data.split().n_events("val")
    zero_correction = module._Scorer(data)("val", np.zeros((n_val, 5)))
    assert zero_correction == pytest.approx(fit)
    truth = data.read("targets/truth", "val")
    perfect = module._Scorer(data)("val", data.read("targets/fit_error", "val"))
    assert perfect["angular_resolution_deg"] < 1e-3 < fit["angular_resolution_deg"]
    assert perfect["energy_resolution"] < 1e-5
    # Regressing the truth: the prediction is the reconstruction itself.
    direct = module._Scorer(ta_sd_data(ta_sd_file, "targets/truth"))("val", truth)
    assert direct["angular_resolution_deg"] < 1e-3


def test_ta_sd_trial_reports_resolutions_beside_the_fits(ta_sd_file: Path) -> None:
    module = objective("ta_sd")
    data = ta_sd_data(ta_sd_file)
    reports: list[dict[str, Any]] = []
    params = {
        "model": {"name": "counter_grid", "time_filters": 4, "grid_filters": 8, "downsample": 2},
        "optimizer": {"name": "adadelta", "learning_rate": 1.0, "rho": 0.95},
        "regularisation": {"noise_std": 0.05, "l2": 1e-5, "dropout": 0.1},
        "batch_size": 32,
    }
    module.train(TrialContext(0, params, seed=1, epochs=2, data=data, report=reports.append))
    first, last = reports
    assert "val_angular_resolution_deg" in first and "fit_angular_resolution_deg" not in first
    assert last["fit_angular_resolution_deg"] == pytest.approx(
        module.fit_resolutions(data)["angular_resolution_deg"]
    )
    for name in ("val_explained_variance", "test_angular_resolution_deg", "test_energy_resolution"):
        assert np.isfinite(last[name]), name


def test_gce_scores_split_the_error_by_background_model() -> None:
    module = objective("gce")
    truth = np.array([0.1, 0.2, 0.3, 0.4])
    predicted = np.array([0.2, 0.2, 0.1, 0.4])
    groups = np.array([b"a", b"a", b"b", b"b"])
    scores = module.scores(truth, predicted, groups)
    assert scores["f_src_mae"] == pytest.approx(0.075)
    assert scores["f_src_bias"] == pytest.approx(-0.025)
    assert scores["mae_a"] == pytest.approx(0.05)
    assert scores["mae_b"] == pytest.approx(0.1)


def test_gce_trial_reports_the_error_on_each_unseen_model(gce_file: Path) -> None:
    from hpsearch.data import split_by_groups

    module = objective("gce")
    base = DataRef.from_file(gce_file, "x", "y", target="regression", split_seed=2)
    test_models = list(gce.SEED_TEST_MODELS)
    split = split_by_groups(
        base.info(),
        "background_model",
        train=list(gce.SEED_TRAIN_MODELS),
        test=test_models,
        seed=1,
        block_size=16,
    )
    data = DataRef(base.info(), base.layout, split)
    reports: list[dict[str, Any]] = []
    params = {
        "model": {"name": "cnn", "layers": 2, "filters": 4, "kernel_size": 3, "pooling": "max"},
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "batch_size": 32,
    }
    module.train(TrialContext(0, params, seed=1, epochs=1, data=data, report=reports.append))
    last = reports[-1]
    per_model = sorted(k for k in last if k.startswith("test_mae_"))
    assert per_model == sorted(f"test_mae_{m}" for m in test_models)
    assert np.isfinite(last["val_f_src_mae"]) and np.isfinite(last["test_f_src_bias"])


def test_the_seed_studies_validate_and_their_tasks_have_simulators_and_baselines() -> None:
    for name in ("ta_sd", "gce"):
        study = load_study(ROOT / "studies" / f"{name}.yaml")
        assert study.task is TASKS[name]
        assert TASKS[name].simulator is not None and TASKS[name].baseline is not None
    assert load_study(ROOT / "studies" / "ta_sd.yaml").spec.searcher.type == "hyperopt-tpe"


def test_ta_sd_baseline_is_the_standard_fit_on_the_test_events(
    project: Path, ta_sd_file: Path, capsys: Any
) -> None:
    study = project / "studies" / "ta_sd.yaml"
    args = ["--set", f"data.path={ta_sd_file}", "--set", "data.simulate=null"]
    assert main(["baseline", str(study), *args]) == 0
    line = " ".join(capsys.readouterr().out.split())
    prepared = prepare(load_study(study, [a for a in args if a != "--set"]), QUIET)
    module = objective("ta_sd")
    expected = module.fit_resolutions(prepared.data)["angular_resolution_deg"]
    assert f"angular resolution {expected:.2f} deg" in line


def test_gce_simulation_takes_the_studys_config(project: Path) -> None:
    study = project / "studies" / "gce.yaml"
    overrides = ["data.simulate.events=128", "data.simulate.config.n_pixels=24"]
    prepared = prepare(load_study(study, overrides), QUIET)
    assert prepared.info.event_shape == (24, 24, 1)
    bad = ["data.simulate.events=128", "data.simulate.config.n_pixel=24", "data.path=other.h5"]
    assert main(["baseline", str(study), *[f"--set={b}" for b in bad]]) == 2
