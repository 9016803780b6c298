"""The Optuna converter's samplers: seeded per trial, and TPE learning from pruned trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from hpsearch.searchers._optuna import scheduler_aware_tpe

X = FloatDistribution(0.0, 1.0)


def _pruned(x: float, curve: dict[int, float]) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.PRUNED, params={"x": x}, distributions={"x": X}, intermediate_values=curve
    )


def _proposals(
    study: optuna.Study, sampler: optuna.samplers.BaseSampler, n: int = 20
) -> list[float]:
    """What the sampler proposes next, n times, each proposal withdrawn (FAIL) at once."""
    study.sampler = sampler
    drawn = []
    for _ in range(n):
        trial = study.ask()
        drawn.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, state=TrialState.FAIL)
    return drawn


def _tpe(progress: StudyDirection) -> optuna.samplers.BaseSampler:
    return scheduler_aware_tpe(
        progress_direction=progress, seed=3, n_startup_trials=5, constant_liar=True
    )


def test_pruned_trials_that_went_further_rank_first_in_a_multi_objective_study() -> None:
    """Low-numbered trials near x=0 were stopped at epoch 1; later ones near x=1 ran to epoch
    3. TPE's "good" set must be the latter (Optuna's rule: furthest first), not the
    lowest-numbered trials that an order-preserving tie would pick."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(10):
        study.add_trial(_pruned(0.01 * i, {1: 0.55}))
    for i in range(10):
        study.add_trial(_pruned(0.9 + 0.01 * i, {1: 0.5, 2: 0.6, 3: 0.62}))
    drawn = _proposals(study, _tpe(StudyDirection.MAXIMIZE))
    assert sum(x > 0.5 for x in drawn) >= 15, drawn


@pytest.mark.parametrize(
    ("directions", "progress", "good"),
    [
        # Multi-objective, the scheduler maximises: the higher last value is better.
        (["maximize", "minimize"], StudyDirection.MAXIMIZE, "high"),
        # ... and when it minimises (a loss), the lower one.
        (["maximize", "minimize"], StudyDirection.MINIMIZE, "low"),
        # Single objective minimising val_loss, scheduler on val_accuracy (max): the curves are
        # accuracies, better when higher, against the study's own direction.
        (["minimize"], StudyDirection.MAXIMIZE, "high"),
        (["maximize"], StudyDirection.MAXIMIZE, "high"),
    ],
)
def test_pruned_trials_at_the_same_epoch_rank_by_value_in_the_scheduler_direction(
    directions: list[str], progress: StudyDirection, good: str
) -> None:
    study = optuna.create_study(directions=directions)
    for i in range(10):  # near x=0: low values of the scheduler's metric
        study.add_trial(_pruned(0.01 * i, {1: 0.3, 2: 0.4}))
    for i in range(10):  # near x=1: high values
        study.add_trial(_pruned(0.9 + 0.01 * i, {1: 0.6, 2: 0.8}))
    drawn = _proposals(study, _tpe(progress))
    high = sum(x > 0.5 for x in drawn)
    assert (high >= 15) if good == "high" else (high <= 5), drawn


def test_plain_tpe_ranks_single_objective_pruned_trials_backwards_when_the_scheduler_differs() -> (
    None
):
    """Why the view exists: Optuna's TPE reads val_accuracy curves as val_loss values."""
    study = optuna.create_study(directions=["minimize"])
    for i in range(10):
        study.add_trial(_pruned(0.01 * i, {1: 0.3, 2: 0.4}))
    for i in range(10):
        study.add_trial(_pruned(0.9 + 0.01 * i, {1: 0.6, 2: 0.8}))
    plain = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, constant_liar=True)
    assert sum(x > 0.5 for x in _proposals(study, plain)) <= 5
