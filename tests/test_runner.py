"""Studies through Ray Tune + ASHA, end to end, asserting what landed in storage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpsearch.cli import main

pytestmark = pytest.mark.e2e


def _trials(storage: str, name: str) -> dict[int, FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=storage)
    return {t.number: t for t in study.get_trials()}


def _peak_overlap(trials: list[FrozenTrial]) -> int:
    events = []
    for t in trials:
        assert t.datetime_start is not None and t.datetime_complete is not None
        events += [(t.datetime_start, 1), (t.datetime_complete, -1)]
    peak = running = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_asha_states_and_worker_reuse(synthetic_study: Callable[..., Path]) -> None:
    """One trial at a time, so ASHA's decisions are known: see tests/objectives/synthetic.py."""
    path = synthetic_study(resources={"cpus_per_trial": 1, "max_concurrent": 1})
    assert main(["run", str(path)]) == 0
    trials = _trials("sqlite:///results/test.db", "synthetic")
    assert {n: t.state for n, t in trials.items()} == {
        0: TrialState.COMPLETE,  # first at every rung: always continues
        1: TrialState.PRUNED,  # worse than trial 0 at the first rung
        2: TrialState.FAIL,  # the synthetic objective raises for trial 2
        3: TrialState.PRUNED,
    }
    done, cut, failed = trials[0], trials[1], trials[2]
    assert done.values is not None and len(done.values) == 2
    assert done.user_attrs["epochs_reached"] == 4
    assert sorted(done.intermediate_values) == [1, 2, 3, 4]
    assert done.user_attrs["test_accuracy"] == pytest.approx(done.values[0] - 0.01)
    assert len(done.user_attrs["history"]) == 4
    assert cut.values is None
    assert cut.user_attrs["epochs_reached"] == 1
    assert cut.user_attrs["stop_reason"] == "scheduler"
    assert list(cut.intermediate_values) == [1]
    assert "synthetic failure of trial 2" in failed.user_attrs["error"]
    # reuse_actors: the trial after a finished one runs in the same worker process.
    assert done.user_attrs["worker_pid"] == cut.user_attrs["worker_pid"]
    assert Path("results/synthetic/pareto.html").stat().st_size > 10_000


def test_trials_run_concurrently_and_resume_adds_only_the_rest(
    synthetic_study: Callable[..., Path],
) -> None:
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 4, "epochs": 3},
        resources={"cpus_per_trial": 1, "max_concurrent": 2},
    )
    (Path("search_spaces") / "synthetic.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 1.0}\n  fail_on: -1\n  sleep: 0.4\n"
    )
    assert main(["run", str(path)]) == 0
    trials = _trials("sqlite:///results/test.db", "synthetic")
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    assert _peak_overlap(list(trials.values())) == 2

    assert main(["run", str(path), "--set", "budget.trials=5"]) == 0
    assert len(_trials("sqlite:///results/test.db", "synthetic")) == 5
    assert main(["run", str(path), "--set", "budget.trials=5"]) == 0  # nothing left to do
    assert len(_trials("sqlite:///results/test.db", "synthetic")) == 5


def test_time_budget_stops_trials_as_pruned(synthetic_study: Callable[..., Path]) -> None:
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 3, "epochs": 40, "seconds": 10},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("search_spaces") / "synthetic.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 1.0}\n  fail_on: -1\n  sleep: 0.5\n"
    )
    assert main(["run", str(path)]) == 0
    trials = _trials("sqlite:///results/test.db", "synthetic")
    assert trials, "at least the first trial started"
    assert all(t.state == TrialState.PRUNED for t in trials.values())
    assert trials[0].user_attrs["stop_reason"] == "time_budget"
    assert 1 <= trials[0].user_attrs["epochs_reached"] < 40


def test_xgamma_resnet_tiny_end_to_end(
    write_study: Callable[..., Path], xgamma_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped objective and space, for real, on tiny data: Keras in Ray workers."""
    path = write_study(
        data__path=str(xgamma_file),
        budget={"trials": 2, "epochs": 2},
        scheduler={"type": "fifo"},
        storage="sqlite:///results/xgamma.db",
    )
    assert main(["run", str(path)]) == 0
    trials = _trials("sqlite:///results/xgamma.db", "xgamma_resnet")
    assert len(trials) == 2
    for trial in trials.values():
        assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
        val_accuracy, train_seconds = trial.values  # type: ignore[misc]
        assert 0.0 <= val_accuracy <= 1.0
        assert train_seconds > 0
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert trial.user_attrs["n_params"] > 0
        assert [h["epoch"] for h in trial.user_attrs["history"]] == [1, 2]
        assert trial.params["blocks"] + 2 >= 3 or trial.params["blocks"] >= 1
    out = capsys.readouterr().out
    assert "Pareto-optimal trials" in out
    assert "test_accuracy" in out


def test_a_streak_of_failures_stops_the_run(synthetic_study: Callable[..., Path]) -> None:
    path = synthetic_study(
        budget={"trials": 8, "epochs": 2, "max_failures_in_a_row": 2},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n    raise RuntimeError('broken objective')\n"
    )
    assert main(["run", str(path)]) == 0
    trials = _trials("sqlite:///results/test.db", "synthetic")
    states = [t.state for t in trials.values()]
    assert states[:2] == [TrialState.FAIL, TrialState.FAIL]
    assert len(states) < 8, "the run went on after the streak"
    assert all(
        "broken objective" in t.user_attrs.get("error", "") or t.state != TrialState.FAIL
        for t in trials.values()
    )


def test_resources_ray_cannot_give_exit_2_and_run_nothing(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_study(resources={"cpus_per_trial": 1, "gpus_per_trial": 1})
    assert main(["run", str(path)]) == 2  # this machine (and CI) has no GPU
    err = " ".join(capsys.readouterr().err.split())
    assert "resources.gpus_per_trial" in err and "but Ray has 0" in err
    assert _trials("sqlite:///results/test.db", "synthetic") == {}


def test_unreachable_cluster_exits_2(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # `auto` with no cluster running: Ray says so at once.
    assert main(["run", str(synthetic_study()), "--address", "auto"]) == 2
    assert "cannot join a Ray cluster" in " ".join(capsys.readouterr().err.split())
