"""Study and space files: the shipped ones load, and every kind of mistake is named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.errors import InputError
from hpsearch.searchers import _optuna
from hpsearch.spec import load_space, load_study

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_study_loads() -> None:
    study = load_study(ROOT / "studies" / "xgamma_resnet.yaml")
    assert study.spec.task == "xgamma"
    assert [o.metric for o in study.spec.objectives] == ["val_accuracy", "train_seconds"]
    params = study.space.params()
    assert params["blocks"].type == "int"
    # The seed's ResNet-10 (3 blocks) and ResNet-16 (5 blocks) are points of the space.
    assert params["blocks"].low <= 3 and params["blocks"].high >= 5  # type: ignore[union-attr]
    decoded = study.space.decode({name: 1 for name in params})
    assert decoded["norm"] == "group" and decoded["optimizer"]["name"] == "adam"


def test_overrides_apply_and_parse_yaml(project: Path) -> None:
    study = load_study(
        "studies/xgamma_resnet.yaml",
        [
            "budget.trials=4",
            "scheduler.reduction_factor=3",
            "objectives.0.metric=val_loss",
            "objectives.0.direction=minimize",
        ],
        storage="sqlite:///elsewhere.db",
    )
    assert study.spec.budget.trials == 4
    assert study.spec.scheduler.reduction_factor == 3.0
    assert (study.spec.objectives[0].metric, study.spec.objectives[0].direction) == (
        "val_loss",
        "minimize",
    )
    assert study.spec.storage == "sqlite:///elsewhere.db"


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"budgett": {"trials": 1}}, "budgett", "allowed keys here"),
        ({"budget": {"trials": "many", "epochs": 2}}, "budget.trials", "integer"),
        ({"budget": {"trials": 0, "epochs": 2}}, "budget.trials", "greater than or equal"),
        ({"scheduler": {"type": "hyperbandit"}}, "scheduler.type", "'hyperband'"),
        (
            {"scheduler": {"type": "median", "brackets": 2}},
            "scheduler",
            "does not take ['brackets']",
        ),
        ({"searcher": {"type": "grid", "n_startup_trials": 3}}, "searcher", "takes allow_partial"),
        ({"searcher": {"type": "hyperopt-tpe", "weights": [0, 0]}}, "searcher", "not all 0"),
        ({"data__split": {"train": 0.5, "val": 0.2, "test": 0.2}}, "data.split", "sum to 0.9"),
        ({"objectives": []}, "objectives", "at least 1"),
    ],
)
def test_study_errors_name_file_key_and_fix(
    write_study: Callable[..., Path], changes: dict[str, object], key: str, words: str
) -> None:
    path = write_study(**changes)
    with pytest.raises(InputError) as info:
        load_study(path)
    error = info.value
    assert error.source == str(path)
    assert error.key == key
    assert words in str(error)
    assert error.fix


def test_override_error_names_the_option(project: Path) -> None:
    with pytest.raises(InputError) as info:
        load_study("studies/xgamma_resnet.yaml", ["budget.trials=-3"])
    assert info.value.source == "--set budget.trials"
    with pytest.raises(InputError) as info:
        load_study("studies/xgamma_resnet.yaml", ["budget.trials"])
    assert "key.sub=value" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("params:\n  lr: {type: float, low: 0.1, high: 0.01}\n", "params.lr", "empty range"),
        (
            "params:\n  lr: {type: float, low: 0.0, high: 1.0, log: true}\n",
            "params.lr",
            "low > 0",
        ),
        ("params:\n  n: {type: int, low: 5, high: 1}\n", "params.n", "empty range"),
        ("params:\n  n: {type: integer, low: 1, high: 5}\n", "params.n.type", "unknown"),
        (
            "params:\n  n: {type: int, low: 1, hi: 5}\n",
            "params.n.hi",
            "allowed keys here: high, log",
        ),
        ("params:\n  c: {type: categorical, choices: []}\n", "params.c.choices", "at least 1"),
        ("params:\n  c: [1, 2]\n", "params.c", "ambiguous"),
        ("params:\n  c: 3\n", "params", "no searched parameter"),
        ("parms:\n  c: 3\n", "parms", "allowed keys here: description, family, params"),
        ("params: [\n", "", "not valid YAML"),
    ],
)
def test_space_errors(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_space(path)
    assert info.value.key == key
    assert words in str(info.value)
    assert str(path) in str(info.value)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="search space file not found"):
        load_space(tmp_path / "nope.yaml")


def test_space_decodes_nested_and_optuna_respects_bounds() -> None:
    space = load_space(ROOT / "search_spaces" / "xgamma_resnet.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = _optuna.suggest(space, study.ask())
        assert 1 <= params["blocks"] <= 5
        assert params["filters"] in (8, 16, 32)
        assert params["optimizer"]["name"] == "adam"
        assert 3e-4 <= params["optimizer"]["learning_rate"] <= 1e-2
        assert 200 <= params["optimizer"]["decay_steps"] <= 5000
    assert set(_optuna.distributions(space)) == set(space.params())


def test_fingerprint_changes_with_the_space(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("params:\n  x: {type: float, low: 0, high: 1}\n")
    b.write_text("params:\n  x: {type: float, low: 0, high: 2}\n")
    assert load_space(a).fingerprint() != load_space(b).fingerprint()
    assert load_space(a).fingerprint() == load_space(a).fingerprint()


def test_cli_bad_input_exits_2_and_stores_nothing(
    write_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(
        budget={"trials": 2, "epochs": 1, "secs": 5}, storage="sqlite:///results/never.db"
    )
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "budget.secs" in err and "fix:" in err
    assert not Path("results/never.db").exists()
    assert not Path("data").exists()


def test_cli_unknown_metric_exits_2_before_storage(
    write_study: Callable[..., Path], xgamma_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(
        objectives=[{"metric": "val_acc", "direction": "maximize"}],
        data__path=str(xgamma_file),
        storage="sqlite:///results/never.db",
    )
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "objectives.0.metric" in err and "val_accuracy" in err
    assert not Path("results/never.db").exists()


def test_cli_missing_data_without_simulate_names_the_fix(
    write_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(data__path="data/absent.h5", data__simulate=None)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "absent.h5" in err and "hpsearch simulate xgamma" in err


@pytest.mark.parametrize(
    "objectives",
    [
        [{"metric": "val_accuracy", "direction": "maximize"}],
        [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "train_seconds", "direction": "minimize"},
        ],
    ],
)
def test_the_default_scheduler_is_asha_for_one_objective_or_several(
    write_study: Callable[..., Path], objectives: list[dict[str, str]]
) -> None:
    """Measured on the recorded xgamma families curves (docs/search_efficiency.md): under the
    same multi-objective TPE, ASHA on the first objective beat MOASHA on 40 fresh seeds."""
    path = write_study(objectives=objectives, scheduler={"grace_period": 2})
    study = load_study(path)
    assert study.spec.scheduler.type == "asha"
    assert study.spec.scheduler.metric == "val_accuracy"
    # A type the study names stays.
    assert load_study(path, ["scheduler.type=moasha"]).spec.scheduler.type == "moasha"
