"""One decision per trial, the failure streak and the run's stop: plain Python, no Ray."""

from __future__ import annotations

import math

import pytest

from hpsearch import lifecycle
from hpsearch.lifecycle import FailureStreak, RunStop, counts_against_budget, decide

OBJ = ["val_accuracy", "train_seconds"]
LAST = {"epoch": 4, "val_accuracy": 0.8, "train_seconds": 12.0, "complete": True}


def test_complete_needs_the_last_epoch_and_every_objective_finite() -> None:
    outcome = decide(LAST, objectives=OBJ, epochs=4)
    assert (outcome.state, outcome.reason, outcome.values) == ("COMPLETE", "complete", (0.8, 12.0))
    assert outcome.counts_against_budget and not outcome.is_failure


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "0.8", True])
def test_a_missing_or_non_finite_objective_is_a_failure(bad: object) -> None:
    last = {**LAST, "train_seconds": bad}
    if bad is None:
        del last["train_seconds"]
    outcome = decide(last, objectives=OBJ, epochs=4)
    assert (outcome.state, outcome.reason) == ("FAIL", "no_value")
    assert "train_seconds" in (outcome.error or "")
    assert outcome.is_failure and outcome.counts_against_budget


def test_only_the_scheduler_prunes() -> None:
    partial = {"epoch": 2, "val_accuracy": 0.6, "train_seconds": 5.0}
    pruned = decide(partial, objectives=OBJ, epochs=4, scheduler_stopped=True)
    assert (pruned.state, pruned.reason, pruned.epochs) == ("PRUNED", "scheduler", 2)
    for stop in sorted(lifecycle.RUN_STOPS):
        cut = decide(partial, objectives=OBJ, epochs=4, run_stop=stop)
        assert (cut.state, cut.reason) == ("FAIL", stop)
        assert cut.cut and not cut.counts_against_budget and not cut.is_failure
        assert "cut after epoch 2 of 4" in (cut.error or "")
    ended = decide(partial, objectives=OBJ, epochs=4)
    assert (ended.state, ended.reason) == ("FAIL", "incomplete")


def test_the_scheduler_decision_wins_over_a_run_stop_and_an_error_over_all() -> None:
    partial = {"epoch": 2, "val_accuracy": 0.6}
    both = decide(partial, objectives=OBJ, epochs=4, scheduler_stopped=True, run_stop="interrupted")
    assert both.state == "PRUNED"
    error = decide(partial, objectives=OBJ, epochs=4, error="Traceback\nValueError: boom")
    assert (error.state, error.reason, error.summary()) == ("FAIL", "error", "ValueError: boom")
    with pytest.raises(ValueError, match="unknown run stop"):
        decide(partial, objectives=OBJ, epochs=4, run_stop="tired")


def test_streak_counts_failures_resets_on_training_and_ignores_cuts() -> None:
    streak = FailureStreak(limit=2)
    fail = decide(None, objectives=OBJ, epochs=4, error="boom")
    cut = decide(None, objectives=OBJ, epochs=4, run_stop="time_budget")
    streak.add(fail)
    streak.add(cut)
    assert streak.count == 1 and not streak.reached
    streak.add(decide(LAST, objectives=OBJ, epochs=4))
    assert streak.count == 0
    streak.add(fail)
    streak.add(decide({**LAST, "val_accuracy": math.nan}, objectives=OBJ, epochs=4))
    assert streak.reached


def test_run_stop_keeps_its_first_reason() -> None:
    now = [0.0]
    streak = FailureStreak(limit=1)
    stop = RunStop(streak, deadline=10.0, clock=lambda: now[0])
    assert stop.check() is None
    now[0] = 10.0
    assert stop.check() == "time_budget"
    streak.add(decide(None, objectives=OBJ, epochs=4, error="boom"))
    stop.stop("interrupted")
    assert stop.check() == "time_budget"
    streaky = RunStop(streak)
    assert streaky.check() == "failure_streak"


@pytest.mark.parametrize(
    ("state", "reason", "counted"),
    [
        ("COMPLETE", "complete", True),
        ("PRUNED", "scheduler", True),
        ("FAIL", "error", True),
        ("FAIL", None, True),  # stored before stop reasons existed: a failure
        ("FAIL", "time_budget", False),
        ("FAIL", "interrupted", False),
        ("RUNNING", None, False),
        ("WAITING", None, False),
    ],
)
def test_what_counts_against_the_trial_budget(
    state: str, reason: str | None, counted: bool
) -> None:
    assert counts_against_budget(state, reason) is counted
