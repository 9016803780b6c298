"""A trial whose Ray worker process dies is retried at once, up to resources.worker_retries.

The objective (tests/objectives/dying.py) SIGKILLs its own worker process in epoch 2, as the
OOM killer would, for one configuration: on its first attempt only, or on every attempt. Ray
reports an ``ActorDiedError``; the lost attempt is FAIL ``worker_lost`` (not counted against
budget.trials) and its retry has the same parameters and seed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from optuna.trial import FrozenTrial, TrialState

from hpsearch.cli import main
from hpsearch.lifecycle import counts_against_budget
from synthetic_runs import stored_trials, write_space

pytestmark = pytest.mark.e2e

DYING = Path(__file__).parent / "objectives" / "dying.py"


def _counted(trials: dict[int, FrozenTrial]) -> list[int]:
    return [
        n
        for n, t in trials.items()
        if counts_against_budget(t.state.name, t.user_attrs.get("stop_reason"))
    ]


def _dying_study(
    synthetic_study: Callable[..., Path], die: str, *, trials: int, **resources: object
) -> Path:
    """A study of dying.py, one trial at a time (trial 0 is the victim), no pruning."""
    write_space(die=die, markers=Path("markers").resolve())
    shutil.copy(DYING, Path("objectives") / "dying.py")
    return synthetic_study(
        task="dying",
        scheduler={"type": "fifo"},
        budget={"trials": trials, "epochs": 3, "max_failures_in_a_row": 4},
        resources={"cpus_per_trial": 1, "max_concurrent": 1, **resources},
    )


def _assert_lost(trial: FrozenTrial) -> None:
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["stop_reason"] == "worker_lost"
    assert trial.user_attrs["epochs_reached"] == 1
    assert "the worker process died: ActorDiedError" in trial.user_attrs["error"]


def test_a_worker_that_dies_once_is_retried_with_the_same_params_and_seed(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dying_study(synthetic_study, "once", trials=3)
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    lost, retry = trials[0], trials[1]
    _assert_lost(lost)
    assert lost.user_attrs["error"].endswith("worker died; retrying (1 of 2)")
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["rerun_of"] == 0 and retry.user_attrs["worker_retry"] == 1
    assert retry.params == lost.params
    assert retry.user_attrs["seed"] == lost.user_attrs["seed"] == retry.user_attrs["seen_seed"]
    assert _counted(trials) == [1, 2, 3], "the lost attempt leaves its place to another trial"
    assert all(trials[n].state == TrialState.COMPLETE for n in (2, 3))
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"trial 0 FAIL epoch 1 worker died; retrying \(1 of 2\)", err), err

    # The next run does not queue the lost trial again: its retry was judged already.
    assert main(["run", str(path), "--set", "budget.trials=4"]) == 0
    again = stored_trials()
    assert "Running again" not in capsys.readouterr().err
    assert len(again) == 5 and "rerun_of" not in again[4].user_attrs
    assert again[4].state == TrialState.COMPLETE


def test_no_retry_with_worker_retries_0(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dying_study(synthetic_study, "once", trials=2, worker_retries=0)
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    _assert_lost(trials[0])
    assert (
        trials[0]
        .user_attrs["error"]
        .endswith("worker died; not retried (resources.worker_retries: 0)")
    )
    assert not [t for t in trials.values() if "rerun_of" in t.user_attrs]
    assert [t.state for t in trials.values()] == [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert "not retried" in " ".join(capsys.readouterr().err.split())


def test_a_worker_that_always_dies_is_retried_worker_retries_times(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """worker_retries 2 and a streak limit of 4: three losses in a row, then the run goes on."""
    path = _dying_study(synthetic_study, "always", trials=2, worker_retries=2)
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    for number in (0, 1, 2):
        _assert_lost(trials[number])
        assert trials[number].params == trials[0].params
        assert trials[number].user_attrs["seed"] == trials[0].user_attrs["seed"]
    assert trials[1].user_attrs["rerun_of"] == 0 and trials[1].user_attrs["worker_retry"] == 1
    assert trials[2].user_attrs["rerun_of"] == 1 and trials[2].user_attrs["worker_retry"] == 2
    assert (
        trials[2]
        .user_attrs["error"]
        .endswith("worker died; retried 2 times already, not again (resources.worker_retries: 2)")
    )
    assert not [t for t in trials.values() if t.user_attrs.get("rerun_of") == 2]
    assert _counted(trials) == [3, 4]
    assert [trials[n].state for n in (3, 4)] == [TrialState.COMPLETE] * 2
    err = " ".join(capsys.readouterr().err.split())
    assert "retrying (1 of 2)" in err and "retrying (2 of 2)" in err
    assert "failed in a row" not in err
    # The next run does not try the spent configuration again (its retries are used up).
    assert main(["run", str(path), "--set", "budget.trials=3"]) == 0
    again = stored_trials()
    assert len(again) == 6 and "rerun_of" not in again[5].user_attrs


def test_the_failure_streak_stops_retrying(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A streak limit of 2 below worker_retries 5: the second loss stops the run, unretried."""
    path = _dying_study(synthetic_study, "always", trials=2, worker_retries=5)
    assert main(["run", str(path), "--set", "budget.max_failures_in_a_row=2"]) == 1
    trials = stored_trials()
    assert list(trials) == [0, 1]
    for trial in trials.values():
        _assert_lost(trial)
    assert trials[1].user_attrs["error"].endswith("worker died; not retried: the run is stopping")
    err = " ".join(capsys.readouterr().err.split())
    assert "2 trials failed in a row" in err


def _fake_trial(tmp_path: Path, error: BaseException | None, text: str) -> Any:
    """What ``_worker_death`` reads of a Tune trial: its local error files."""
    from ray import cloudpickle

    pickled = None
    if error is not None:
        pickled = tmp_path / "error.pkl"
        pickled.write_bytes(cloudpickle.dumps(error))
    (tmp_path / "error.txt").write_text(f"Failure # 1 (occurred at 2026-01-01_00-00-00)\n{text}\n")
    return SimpleNamespace(
        pickled_error_file=None if pickled is None else str(pickled),
        error_file=str(tmp_path / "error.txt"),
        get_error=lambda: None,
    )


KILLED = (
    "The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n"
    "\tpid: 1261\n\tip: 192.0.2.2\nThe actor is dead because its worker process has died. "
    "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a "
    "connection error code 2. End of file."
)


def test_a_dead_worker_is_told_from_an_error_of_the_objective(tmp_path: Path) -> None:
    from ray import exceptions

    from hpsearch.runner._driver import _worker_death

    died = exceptions.ActorDiedError()
    died.error_msg = KILLED
    expected = (
        "the worker process died: ActorDiedError: The actor died unexpectedly before finishing "
        "this task. (pid 1261, exit type SYSTEM_ERROR)"
    )
    assert _worker_death(_fake_trial(tmp_path, died, KILLED)) == expected
    # Without the pickle (or one that cannot be read), Ray's text says it.
    assert _worker_death(_fake_trial(tmp_path, None, KILLED)) == expected.replace(
        "ActorDiedError", "Ray"
    )
    assert _worker_death(_fake_trial(tmp_path, exceptions.WorkerCrashedError(), "x")) == (
        "the worker process died: WorkerCrashedError: The worker died unexpectedly while "
        "executing this task. Check python-core-worker-*.log files for more information."
    )
    # The objective raised (even an error whose text looks like Ray's), or the actor's
    # creation failed: the trial's own failure, not a lost worker.
    raised = exceptions.RayTaskError("train", "Traceback ...\nValueError: x", ValueError("x"))
    assert _worker_death(_fake_trial(tmp_path, raised, "Traceback ...\nValueError: x")) is None
    looks = "RuntimeError: The actor died unexpectedly (in the objective)"
    assert _worker_death(_fake_trial(tmp_path, None, f"Traceback ...\n{looks}")) is None
    init = exceptions.ActorDiedError(raised)
    assert _worker_death(_fake_trial(tmp_path, init, str(init))) is None
