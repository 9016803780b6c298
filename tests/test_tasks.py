"""Tasks: what a study's ``task:`` brings (defaults, metrics and their directions, simulator,
baseline), and the checks made from it before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpsearch.cli import main
from hpsearch.errors import InputError
from hpsearch.spec import load_study
from hpsearch.tasks import TASKS, custom_task, get_task


def user_study(project: Path, **changes: Any) -> Path:
    """A minimal study of a user's own file: task, name, seed, data path, budget."""
    raw: dict[str, Any] = {
        "name": "mine",
        "task": "classify",
        "seed": 1,
        "data": {"path": "data/mine.h5"},
        "budget": {"trials": 2, "epochs": 1},
    }
    for key, value in changes.items():
        target = raw
        *parents, last = key.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    path = project / "studies" / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_task_names_metrics_that_it_reports() -> None:
    for task in TASKS.values():
        assert task.primary in task.metrics
        assert set(task.table_metrics) <= set(task.metrics)
        assert task.metrics["train_seconds"] == "minimize"
        assert task.metrics["inference_us_per_event"] == "minimize"
    assert TASKS["classify"].metrics["val_accuracy"] == "maximize"
    assert TASKS["regress"].metrics["val_explained_variance"] == "maximize"
    assert TASKS["regress"].metrics["val_loss"] == "minimize"
    assert "val_accuracy" not in TASKS["regress"].metrics


def test_a_study_of_a_generic_task_takes_its_defaults(project: Path) -> None:
    study = load_study(user_study(project, task="regress"))
    spec = study.spec
    assert study.task is TASKS["regress"]
    assert spec.space == TASKS["regress"].space
    assert spec.space is not None and spec.space.is_file()
    assert [(o.metric, o.direction) for o in spec.objectives] == [
        ("val_explained_variance", "maximize"),
        ("train_seconds", "minimize"),
    ]
    assert (spec.scheduler.metric, spec.scheduler.mode) == ("val_explained_variance", "max")
    assert (spec.data.x_key, spec.data.y_key) == ("x", "y")
    assert study.space.choice_options("model") == ("resnet", "cnn", "lstm", "lstm_fcn")


def test_what_a_study_says_wins_over_its_tasks_defaults(project: Path) -> None:
    study = load_study(
        user_study(
            project,
            data__x_key="maps",
            objectives=[{"metric": "val_loss", "direction": "minimize"}],
        )
    )
    assert study.spec.data.x_key == "maps"
    assert (study.spec.scheduler.metric, study.spec.scheduler.mode) == ("val_loss", "min")


def test_xgamma_studies_are_unchanged_by_the_task_defaults(
    write_study: Callable[..., Path],
) -> None:
    spec = load_study(write_study()).spec
    assert spec.space == Path("search_spaces/xgamma_resnet.yaml")
    assert [o.metric for o in spec.objectives] == ["val_accuracy", "train_seconds"]
    assert (spec.data.x_key, spec.data.y_key) == ("waveforms", "labels")


@pytest.mark.parametrize(
    ("changes", "key", "fix"),
    [
        (
            {"objectives": [{"metric": "val_loss", "direction": "maximize"}]},
            "objectives.0.direction",
            "direction: minimize",
        ),
        (
            {"scheduler": {"metric": "val_accuracy", "mode": "min"}},
            "scheduler.mode",
            "mode: max",
        ),
        (
            {"objectives": [{"metric": "val_explained_variance", "direction": "maximize"}]},
            "objectives.0.metric",
            "val_accuracy",
        ),
    ],
)
def test_metrics_against_the_task_are_refused(
    project: Path, changes: dict[str, Any], key: str, fix: str
) -> None:
    path = user_study(project, **changes)
    with pytest.raises(InputError) as info:
        load_study(path)
    assert info.value.key == key
    assert fix in info.value.fix
    assert main(["validate", str(path)]) == 2


def test_an_unknown_task_lists_the_known_ones(project: Path, capsys: Any) -> None:
    path = user_study(project, task="clasify")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'clasify'" in err
    for name in TASKS:
        assert name in err


def test_a_task_defined_by_its_objective_file(project: Path) -> None:
    assert get_task("synthetic", source="s.yaml") is None  # objectives/synthetic.py exists
    from hpsearch.objective import load_objective

    module = load_objective(project / "objectives" / "synthetic.py")
    task = custom_task("synthetic", module, "objectives/synthetic.py")
    assert task.direction("val_accuracy") == "maximize"
    assert task.direction("val_loss") == "minimize"
    assert task.direction("seen_x") is None  # reported, direction unknown: not checked
    assert "seen_x" in task.metrics


def test_simulate_offers_the_tasks_with_a_simulator(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "classify", "--events", "10", "--out", str(tmp_path / "x.h5")])
    assert "invalid choice: 'classify'" in capsys.readouterr().err
    assert main(["simulate", "xgamma", "--events", "120", "--out", str(tmp_path / "x.h5")]) == 0
    assert (tmp_path / "x.h5").is_file()
