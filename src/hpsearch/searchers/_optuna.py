"""The Optuna converter: hpsearch's search space in, Optuna's define-by-run calls out.

All of Optuna's conventions live here and nowhere else: ``suggest_int`` includes ``high``,
``log`` and ``step`` exclude each other, categorical choices must be plain scalars. Other search
libraries get a converter of their own, decoding to the same nested dict.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.spec import CategoricalParam, FloatParam, IntParam, SearcherSpec, SearchSpace


def suggest(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Draw every parameter of ``space`` on ``trial`` and return the nested dict."""
    flat: dict[str, Any] = {}
    for name, param in space.params().items():
        if isinstance(param, FloatParam):
            flat[name] = trial.suggest_float(
                name, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            flat[name] = trial.suggest_int(
                name, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, CategoricalParam):
            flat[name] = trial.suggest_categorical(name, param.choices)
    return space.decode(flat)


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of ``space``, for trials written after the fact (``add_trial``)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, param in space.params().items():
        if isinstance(param, FloatParam):
            out[name] = optuna.distributions.FloatDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            out[name] = optuna.distributions.IntDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        else:
            out[name] = optuna.distributions.CategoricalDistribution(param.choices)
    return out


def make_sampler(spec: SearcherSpec, seed: int) -> optuna.samplers.BaseSampler:
    """Build the sampler a study file names.

    TPE runs with ``constant_liar`` because Ray keeps several trials running at once: without
    it, every concurrent ask sees the same history and proposes nearly the same point.
    """
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ParetoSafeTPESampler(
            seed=seed, n_startup_trials=spec.n_startup_trials, constant_liar=True
        )


class _PrunedCurvesHidden:
    """A study as TPE should see it in a multi-objective search: pruned trials without curves.

    Everything but the trial lists is the real study's.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return _without_pruned_curves(trials)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return _without_pruned_curves(self._study.get_trials(deepcopy=deepcopy, states=states))


def _without_pruned_curves(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    out = []
    for trial in trials:
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            trial = copy.copy(trial)
            trial.intermediate_values = {}
        out.append(trial)
    return out


class ParetoSafeTPESampler(optuna.samplers.TPESampler):
    """TPE that tolerates PRUNED trials with per-epoch values in multi-objective studies.

    Optuna's TPE ranks pruned trials by their last intermediate value along
    ``study.direction``, which a multi-objective study does not have: it raises. Optuna never
    meets this itself (``Trial.report`` refuses multi-objective studies), but hpsearch stores
    every trial's per-epoch values. So TPE is shown pruned trials without them; they then all
    rank below the complete trials, as in Optuna's own multi-objective TPE.
    """

    def _view(self, study: optuna.Study) -> optuna.Study:
        if len(study.directions) > 1:
            return _PrunedCurvesHidden(study)  # type: ignore[return-value]
        return study

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        """As TPE's, on the view of the study."""
        return super().infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        """As TPE's, on the view of the study."""
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        """As TPE's, on the view of the study."""
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)
