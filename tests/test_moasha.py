"""MOASHA: successive halving that ranks each rung by Pareto rank over the study's objectives."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.results.storage import trial_history
from hpsearch.runner._moasha import Rungs, crowding, fronts, milestones
from synthetic_runs import stored_trials, write_space

ACC_TIME = [("val_accuracy", "max"), ("train_seconds", "min")]


def test_rungs_below_the_budget() -> None:
    assert milestones(1, 2, 8) == [1, 2, 4]
    assert milestones(2, 3, 20) == [2, 6, 18]
    assert milestones(1, 2, 1) == []


def test_non_dominated_sorting_and_crowding() -> None:
    vectors = {0: (1.0, 5.0), 1: (2.0, 2.0), 2: (5.0, 1.0), 3: (3.0, 3.0), 4: (6.0, 6.0)}
    assert fronts(vectors) == [[0, 1, 2], [3], [4]]
    spread = crowding([0, 1, 2], vectors)
    assert spread[0] == spread[2] == math.inf
    assert spread[1] == pytest.approx((5 - 1) / 4 + (5 - 1) / 4)


def test_a_fast_point_of_the_front_goes_on_where_asha_would_stop_it() -> None:
    rungs = Rungs(ACC_TIME, grace_period=1, reduction_factor=2, max_t=4)
    assert rungs.goes_on("best", 1, {"val_accuracy": 0.90, "train_seconds": 10.0})
    # Less accurate but faster: on the front, so it goes on. ASHA on accuracy alone keeps
    # 1 of 2 here and would stop it.
    assert rungs.goes_on("fast", 1, {"val_accuracy": 0.80, "train_seconds": 2.0})
    # Worse and slower than "best": dominated, and 3 // 2 = 1 place for the rest.
    assert not rungs.goes_on("slow", 1, {"val_accuracy": 0.70, "train_seconds": 12.0})
    # Between rungs nothing is decided; at the budget neither.
    assert rungs.goes_on("slow", 3, {"val_accuracy": 0.1, "train_seconds": 99.0})
    assert rungs.goes_on("slow", 4, {"val_accuracy": 0.1, "train_seconds": 99.0})


def test_dominated_trials_fill_the_kept_share_by_rank() -> None:
    rungs = Rungs(ACC_TIME, grace_period=1, reduction_factor=2, max_t=4)
    for name, acc, secs in [("a", 0.9, 1.0), ("b", 0.5, 5.0), ("c", 0.6, 4.0), ("d", 0.4, 6.0)]:
        rungs.goes_on(name, 1, {"val_accuracy": acc, "train_seconds": secs})
    # Five trials at the rung: 5 // 2 = 2 go on, "a" (front) and the best of the rest, "c".
    assert rungs.goes_on("e", 1, {"val_accuracy": 0.55, "train_seconds": 4.5}) is False
    ranked = {n: rungs.goes_on(n, 1, {"val_accuracy": 0.6, "train_seconds": 4.0}) for n in "c"}
    assert ranked == {"c": True}
    # A missing objective counts as the worst value.
    assert not rungs.goes_on("f", 1, {"val_accuracy": float("nan"), "train_seconds": 9.0})


@pytest.mark.e2e
def test_moasha_stops_only_dominated_trials_and_records_them_pruned(
    synthetic_study: Callable[..., Path],
) -> None:
    """One trial at a time, so the trials at a rung are those numbered before: every PRUNED
    trial was dominated at the rung where it stopped by a trial that reached it earlier."""
    write_space()
    path = synthetic_study(
        scheduler={"type": "moasha", "grace_period": 1, "reduction_factor": 2},
        budget={"trials": 8, "epochs": 4},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    pruned = [t for t in trials.values() if t.state == TrialState.PRUNED]
    assert pruned, "the synthetic curves fall with the trial number: some must stop"
    assert all(t.user_attrs["stop_reason"] == "scheduler" for t in pruned)

    def at(number: int, epoch: int) -> tuple[float, float] | None:
        rows = [r for r in trial_history(trials[number]) if r["epoch"] == epoch]
        return (rows[0]["val_accuracy"], rows[0]["train_seconds"]) if rows else None

    for trial in pruned:
        rung = trial.user_attrs["epochs_reached"]
        mine = at(trial.number, rung)
        assert mine is not None
        earlier = [at(n, rung) for n in trials if n < trial.number]
        assert any(
            o is not None and o[0] >= mine[0] and o[1] <= mine[1] and o != mine for o in earlier
        ), f"trial {trial.number} stopped at epoch {rung} though no earlier trial dominated it"
