"""Every searcher and scheduler in a tiny study, enqueued configurations, and `validate`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.errors import InputError
from hpsearch.recorder import Recorder
from hpsearch.searchers import make_searcher
from hpsearch.spec import load_study

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
STORAGE = "sqlite:///results/test.db"


@pytest.fixture
def anyspace(synthetic_study: Callable[..., Path], project: Path) -> Callable[..., Path]:
    """A study of the `anyspace` objective over one of tests/spaces/*.yaml."""
    shutil.copy(TESTS / "objectives" / "anyspace.py", project / "objectives" / "anyspace.py")
    for name in ("conditional", "numeric"):
        shutil.copy(TESTS / "spaces" / f"{name}.yaml", project / "search_spaces" / f"{name}.yaml")

    def write(space: str = "conditional", **changes: object) -> Path:
        defaults: dict[str, object] = {
            "task": "anyspace",
            "space": f"search_spaces/{space}.yaml",
            "budget": {"trials": 5, "epochs": 2},
            "scheduler": {"type": "fifo"},
            "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
        }
        return synthetic_study(**{**defaults, **changes})

    return write


SEARCHERS = [
    ("optuna-tpe", "conditional", {"n_startup_trials": 2}),
    ("optuna-nsga2", "conditional", {"population_size": 2}),
    ("optuna-gp", "conditional", {"n_startup_trials": 2}),
    ("optuna-cmaes", "numeric", {"n_startup_trials": 2}),
    ("hyperopt-tpe", "conditional", {"n_startup_trials": 2}),
    ("random", "conditional", {}),
    ("grid", "conditional", {"allow_partial": True}),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("kind", "space", "settings"), SEARCHERS, ids=[s[0] for s in SEARCHERS])
def test_every_searcher_runs_a_tiny_study(
    anyspace: Callable[..., Path], kind: str, space: str, settings: dict[str, object]
) -> None:
    path = anyspace(space, searcher={"type": kind, **settings})
    assert main(["run", str(path)]) == 0
    study = optuna.load_study(study_name="synthetic", storage=STORAGE)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5, [
        t.user_attrs.get("error") for t in trials
    ]
    loaded = load_study(path)
    for trial in trials:
        # The worker received exactly the decoded form of what storage holds.
        assert json.loads(trial.user_attrs["seen"]) == loaded.space.decode(trial.params)
    assert study.user_attrs["searcher"] == kind
    if kind == "grid":  # a fixed order without repeats
        assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 5


@pytest.mark.e2e
@pytest.mark.parametrize("scheduler", ["hyperband", "median"])
def test_hyperband_and_median_stopping_prune_through_the_scheduler(
    synthetic_study: Callable[..., Path], scheduler: str
) -> None:
    """Synthetic trial n is worse than every trial before it: later ones get stopped."""
    (Path("search_spaces") / "synthetic.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 1.0}\n  fail_on: -1\n  sleep: 0.01\n"
    )
    extra = {"brackets": 2} if scheduler == "hyperband" else {"min_samples": 2}
    path = synthetic_study(
        scheduler={
            "type": scheduler,
            "metric": "val_accuracy",
            "mode": "max",
            "grace_period": 1,
            **extra,
        },
        budget={"trials": 5, "epochs": 4},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    assert main(["run", str(path)]) == 0
    trials = optuna.load_study(study_name="synthetic", storage=STORAGE).get_trials()
    states = [t.state for t in trials]
    assert TrialState.PRUNED in states, states
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert {t.user_attrs["stop_reason"] for t in trials if t.state == TrialState.PRUNED} == {
        "scheduler"
    }


def test_enqueued_configurations_run_first_and_once(
    anyspace: Callable[..., Path], project: Path
) -> None:
    queue = project / "seed_models.yaml"
    queue.write_text(
        "small_conv:\n"
        "  batch: 16\n"
        "  model: {name: conv, filters: 8, pooling: {name: average, size: 3}}\n"
        "  rate: 0.03\n"
        "an_lstm: {batch: 32, model: {name: lstm, units: 20}, rate: 0.05}\n"
    )
    study = load_study(anyspace(searcher={"type": "random"}, enqueue=str(queue)))
    from hpsearch.recorder import open_storage
    from hpsearch.spec import load_enqueue

    recorder = Recorder(study, open_storage(study.spec.storage))
    assert recorder.enqueue(load_enqueue(queue, study.space)) == 2
    again = Recorder(study, open_storage(study.spec.storage))
    assert again.enqueue(load_enqueue(queue, study.space)) == 0  # already queued
    first, second, third = (recorder.ask() for _ in range(3))
    assert first.params == {
        "batch": 16,
        "model": {"name": "conv", "filters": 8, "pooling": {"name": "average", "size": 3}},
        "rate": 0.03,
    }
    assert second.params["model"] == {"name": "lstm", "units": 20}
    labels = [t.user_attrs.get("enqueued_as") for t in recorder.study.get_trials()]
    assert labels == ["small_conv", "an_lstm", None]
    assert third.params != first.params


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ("a: {batch: 16, model: {name: gru}, rate: 0.03}", "a.model", "none of"),
        (
            "a: {batch: 16, model: {name: lstm, units: 99}, rate: 0.03}",
            "a.model.lstm.units",
            "not a value",
        ),
        ("a: {batch: 16, model: {name: lstm, units: 9}, rate: 0.04}", "a.rate", "not a value"),
        ("a: {batch: 16, model: {name: lstm, units: 9}}", "a.rate", "missing"),
        (
            "a: {batch: 16, model: {name: lstm, units: 9}, rate: 0.03, lr: 1}",
            "a.lr",
            "not in the space",
        ),
    ],
)
def test_a_bad_enqueued_configuration_exits_2_naming_label_and_key(
    anyspace: Callable[..., Path],
    project: Path,
    capsys: pytest.CaptureFixture[str],
    config: str,
    key: str,
    words: str,
) -> None:
    queue = project / "queue.yaml"
    queue.write_text(config + "\n")
    path = anyspace()
    assert main(["run", str(path), "--enqueue", str(queue)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{queue}: {key}:" in err and words in err
    assert (
        not Path("results/test.db").exists()
        or not optuna.load_study(study_name="synthetic", storage=STORAGE).get_trials()
    )


def test_searchers_refuse_spaces_they_cannot_search(anyspace: Callable[..., Path]) -> None:
    with pytest.raises(InputError, match="categorical") as info:
        make_searcher(load_study(anyspace(searcher={"type": "optuna-cmaes"})))
    assert info.value.key == "params.batch"
    with pytest.raises(InputError, match="grid has 222 points") as info:
        make_searcher(load_study(anyspace(searcher={"type": "grid"})))
    assert info.value.key == "budget.trials"
    with pytest.raises(InputError, match="continuous") as info:
        make_searcher(load_study(anyspace("numeric", searcher={"type": "grid"})))
    with pytest.raises(InputError, match="1 weight"):
        make_searcher(load_study(anyspace(searcher={"type": "hyperopt-tpe", "weights": [1.0]})))


def test_cmaes_on_two_objectives_minimises_a_stated_scalarisation(
    anyspace: Callable[..., Path],
) -> None:
    from hpsearch.lifecycle import decide
    from hpsearch.recorder import open_storage

    study = load_study(
        anyspace("numeric", searcher={"type": "optuna-cmaes", "n_startup_trials": 2})
    )
    recorder = Recorder(study, open_storage(study.spec.storage))
    assert recorder.study.user_attrs["searcher_objectives"] == (
        "optuna-cmaes: single-objective, minimises -val_accuracy; train_seconds not seen by "
        "the searcher"
    )
    for _ in range(8):
        ticket = recorder.ask()
        x = ticket.params["x"]
        last = {
            "epoch": 2,
            "val_accuracy": 1 - (x - 0.7) ** 2,
            "train_seconds": 1.0,
            "complete": True,
        }
        recorder.finish(
            ticket.number,
            decide(last, objectives=["val_accuracy", "train_seconds"], epochs=2),
            None,
        )
    assert all(t.state == TrialState.COMPLETE for t in recorder.study.get_trials())


def test_validate_prints_the_tree_without_tensorflow_or_ray(project: Path) -> None:
    code = (
        "import sys\n"
        "from hpsearch.cli import main\n"
        f"code = main(['validate', {str(ROOT / 'studies' / 'xgamma_families.yaml')!r}])\n"
        "print('EXIT', code, 'tensorflow' in sys.modules, 'ray' in sys.modules)\n"
    )
    shutil.copytree(ROOT / "studies", project / "studies", dirs_exist_ok=True)
    shutil.copytree(ROOT / "search_spaces", project / "search_spaces", dirs_exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "EXIT 0 False False" in out
    assert "lstm_fcn  (783 points)" in out and "constant" in out
    assert "downsample  categorical [4, 8]" in out


def test_the_families_space_compiles_for_every_searcher_that_can_take_it(project: Path) -> None:
    """search_spaces/xgamma_families.yaml (the issue's model, schedule and optimizer choices):
    every searcher proposes valid branches of it; CMA-ES and grid refuse it, saying why."""
    from hpsearch.lifecycle import decide

    shutil.copytree(ROOT / "search_spaces", project / "search_spaces", dirs_exist_ok=True)
    base = load_study(ROOT / "studies" / "xgamma_families.yaml", ["enqueue=null"])
    for kind in ("optuna-tpe", "optuna-nsga2", "optuna-gp", "hyperopt-tpe", "random"):
        settings = {"population_size": 4} if kind == "optuna-nsga2" else {}
        if kind in ("optuna-tpe", "optuna-gp", "hyperopt-tpe"):
            settings = {"n_startup_trials": 3}
        study = load_study(
            ROOT / "studies" / "xgamma_families.yaml",
            [
                "enqueue=null",
                f"name=families_{kind}",
                f"searcher={json.dumps({'type': kind, **settings})}",
            ],
            storage=f"sqlite:///results/{kind}.db",
        )
        from hpsearch.recorder import open_storage

        recorder = Recorder(study, open_storage(study.spec.storage))
        for index in range(6):
            ticket = recorder.ask()
            stored = recorder.study.trials[ticket.number].params
            assert study.space.decode(stored) == ticket.params
            assert ticket.params["model"]["name"] in ("resnet", "cnn", "lstm", "lstm_fcn")
            last = {
                "epoch": 6,
                "val_accuracy": 0.5 + 0.05 * index,
                "train_seconds": 9.0,
                "complete": True,
            }
            recorder.finish(
                ticket.number,
                decide(last, objectives=["val_accuracy", "train_seconds"], epochs=6),
                None,
            )
    with pytest.raises(InputError, match="categorical"):
        make_searcher(load_study(base.source, ["enqueue=null", "searcher={type: optuna-cmaes}"]))
    with pytest.raises(InputError, match="continuous"):
        make_searcher(load_study(base.source, ["enqueue=null", "searcher={type: grid}"]))


def test_every_option_of_the_families_space_builds_a_model_and_optimizer(project: Path) -> None:
    """The space and the builders agree on every family, optimizer and schedule option."""
    import numpy as np

    from hpsearch.objective import load_objective
    from hpsearch.searchers._ray import draw_random

    space = load_study(ROOT / "studies" / "xgamma_families.yaml", ["enqueue=null"]).space
    xgamma = load_objective(ROOT / "objectives" / "xgamma.py")
    rng = np.random.default_rng(5)
    seen: dict[str, set[str]] = {"model": set(), "optimizer": set(), "lr_schedule": set()}
    for _ in range(40):
        params = space.decode(space.sample(lambda name, param: draw_random(param, rng)))
        for group, names in seen.items():
            names.add(params[group]["name"])
        model, optimizer, callbacks = xgamma.build_family_trial(
            params, n_samples=256, n_classes=2, steps_per_epoch=10, epochs=6
        )
        assert model.output_shape == (None, 2)
        assert type(optimizer).__name__.lower() == params["optimizer"]["name"]
        assert bool(callbacks) == (params["lr_schedule"]["name"] == "plateau")
    assert seen == {
        "model": {"resnet", "cnn", "lstm", "lstm_fcn"},
        "optimizer": {"adam", "adadelta", "sgd", "rmsprop"},
        "lr_schedule": {"exponential", "cosine", "step", "plateau", "constant"},
    }
