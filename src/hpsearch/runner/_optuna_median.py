"""Optuna's own early stopping, as a Ray Tune scheduler: its ``MedianPruner``, deciding.

What an Optuna user runs by default is TPE with the median pruner: a trial is pruned at an
epoch when its best value so far is worse than the median of the *completed* trials' values
at that epoch, once ``n_startup_trials`` trials have completed. Ray's ``MedianStoppingRule``
(scheduler ``median``) is a different rule (running averages, all trials). Here Optuna's class
itself decides, on a view of the trials as an Optuna study would hold them: the scheduler
metric's per-epoch values as intermediate values, one direction. A view, not the stored
study, because the stored study is multi-objective (which Optuna's pruners refuse) and its
intermediate values are written after the scheduler has decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

#: Optuna's ``MedianPruner`` default: no pruning before this many trials completed.
N_STARTUP_TRIALS = 5


def _frozen(values: dict[int, float], state: TrialState) -> FrozenTrial:
    return FrozenTrial(
        number=0,
        state=state,
        value=None,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values=dict(values),
        trial_id=0,
        values=[values[max(values)]] if state == TrialState.COMPLETE else None,
    )


@dataclass
class _View:
    """What ``PercentilePruner.prune`` reads of a study: its direction and completed trials."""

    direction: StudyDirection
    completed: list[FrozenTrial] = field(default_factory=list)

    def get_trials(
        self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None
    ) -> list[FrozenTrial]:
        if states is None or TrialState.COMPLETE in states:
            return list(self.completed)
        return []


class MedianRule:
    """Optuna's ``MedianPruner`` fed one metric per epoch, trial by trial.

    Args:
        metric: The metric it watches (``scheduler.metric``).
        mode: ``max`` or ``min``, the metric's direction.
        n_startup_trials: Completed trials needed before any trial is pruned.
        n_warmup_steps: Epochs before which no trial is pruned (Optuna's steps are epochs).
        max_t: The full epoch budget: a trial that reports it has completed.
    """

    def __init__(
        self, metric: str, mode: str, n_startup_trials: int, n_warmup_steps: int, max_t: int
    ) -> None:
        self._metric = metric
        self._pruner = optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
        direction = StudyDirection.MAXIMIZE if mode == "max" else StudyDirection.MINIMIZE
        self._view = _View(direction)
        self._max_t = max_t
        self._values: dict[str, dict[int, float]] = {}

    def goes_on(self, trial: str, epoch: int, result: Mapping[str, Any]) -> bool:
        """Record the metric at ``epoch`` and ask the pruner; a completed trial joins the view.

        A result without the metric decides nothing: the trial goes on.
        """
        value = result.get(self._metric)
        if not isinstance(value, int | float):
            return True
        values = self._values.setdefault(trial, {})
        values[epoch] = float(value)
        if epoch >= self._max_t:
            self._view.completed.append(_frozen(values, TrialState.COMPLETE))
            return True
        # The view is all Optuna's pruner reads of a study.
        pruned = self._pruner.prune(self._view, _frozen(values, TrialState.RUNNING))  # type: ignore[arg-type]
        return not pruned
