"""The Optuna converter: hpsearch's search space in, Optuna's define-by-run calls out.

All of Optuna's conventions live here and nowhere else: ``suggest_int`` includes ``high``,
``log`` and ``step`` exclude each other, categorical choices must be plain scalars. Other search
libraries get a converter of their own, decoding to the same nested dict.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Container, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch.searchers._base import Scalarisation, Searcher
from hpsearch.seeding import derive_seed
from hpsearch.spec import FloatParam, IntParam, Param, SearchSpace, StudySpec


def suggest(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Draw the parameters ``space`` makes active on ``trial`` and return the nested dict.

    Define-by-run: a choice is suggested as a categorical first, and only the chosen option's
    parameters are suggested after it, so Optuna stores exactly the trial's branch.
    """

    def draw(name: str, param: Param) -> Any:
        if isinstance(param, FloatParam):
            return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
        if isinstance(param, IntParam):
            return trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step)
        return trial.suggest_categorical(name, param.choices)

    return space.decode(space.sample(draw))


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of every name in ``space`` (all branches), for ``add_trial``."""
    return {name: distribution(param) for name, param in space.params().items()}


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of one parameter (a choice as a categorical of its options)."""
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(
            param.low, param.high, log=param.log, step=param.step
        )
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(
            param.low, param.high, log=param.log, step=param.step
        )
    return optuna.distributions.CategoricalDistribution(param.choices)


class OptunaSearcher(Searcher):
    """Optuna's samplers: TPE, NSGA-II, GP and CMA-ES over the stored study.

    The sampler is made anew for every trial, seeded from the study's master seed and the
    trial's number. A resumed run therefore continues the sequence where the stored study left
    it instead of drawing the first run's parameters again (a sampler seeded once per run
    restarts its random stream on every ``hpsearch run``), and a study replays exactly for a
    given history. None of these samplers keeps state hpsearch relies on between trials: what
    they learn from (and CMA-ES's and NSGA-II's own bookkeeping) is in storage.

    Args:
        spec: The study (searcher settings, master seed, objectives, scheduler direction).
    """

    def __init__(self, spec: StudySpec) -> None:
        self.name = spec.searcher.type
        self._spec = spec.searcher
        self._seed = spec.seed
        self._progress = (
            StudyDirection.MAXIMIZE if spec.scheduler.mode == "max" else StudyDirection.MINIMIZE
        )
        self._scalarisation: Scalarisation | None = None
        if self.name == "optuna-cmaes" and len(spec.objectives) > 1:
            self._scalarisation = Scalarisation.of(
                [o.metric for o in spec.objectives],
                [o.direction for o in spec.objectives],
                spec.searcher.weights,
            )

    def objectives_note(self) -> str:
        """How the objectives reach the sampler."""
        if self._scalarisation is not None:
            return f"{self.name}: single-objective, {self._scalarisation.describe()}"
        if self.name == "optuna-tpe":
            return "optuna-tpe: all objectives (multi-objective TPE); learns from pruned trials"
        return (
            f"{self.name}: all objectives; parameters that only some branches have are drawn "
            "at random (the model covers the parameters every trial has)"
        )

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes trial ``number``."""
        seed = derive_seed(self._seed, "sampler", number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.name == "optuna-nsga2":
                return optuna.samplers.NSGAIISampler(
                    seed=seed, population_size=self._spec.population_size
                )
            if self.name == "optuna-gp":
                return optuna.samplers.GPSampler(
                    seed=seed,
                    n_startup_trials=self._spec.n_startup_trials,
                    warn_independent_sampling=False,  # said once, in objectives_note
                )
            if self.name == "optuna-cmaes":
                cmaes = optuna.samplers.CmaEsSampler(
                    seed=seed, n_startup_trials=self._spec.n_startup_trials
                )
                scalarisation = self._scalarisation
                if scalarisation is None:
                    return cmaes
                return ViewedSampler(
                    cmaes,
                    lambda study: _Scalarised(study, scalarisation),
                    lambda values: [scalarisation.loss(values)],
                )
            # constant_liar: Ray keeps several trials running at once; without it every
            # concurrent ask sees the same history and proposes nearly the same point.
            return scheduler_aware_tpe(
                progress_direction=self._progress,
                seed=seed,
                n_startup_trials=self._spec.n_startup_trials,
                constant_liar=True,
            )


class _StudyView:
    """A study as a sampler is shown it: the real one, each trial passed through :meth:`_view`.

    Optuna's samplers read trials through ``Study._get_trials``; everything else is the real
    study's. The views below rely on that private name: the Optuna versions they are tested
    with are pinned in pyproject.toml, and ``tests/test_searchers.py`` and
    ``tests/test_study_searchers.py`` check their effect on proposals.
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
        # One snapshot of the trials per ask (Optuna resets it at each ``ask``; the Recorder at
        # each ending): TPE with ``constant_liar`` asks for no cache, and read the whole
        # history once per sampled parameter (17 reads for one ten-parameter trial). Its reason,
        # other processes' running trials changing within the ask, does not hold for a driver
        # that asks from one thread; the trial being asked is left out by TPE itself.
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=True)
        return [self._view(trial) for trial in trials]

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [self._view(trial) for trial in trials]

    def _view(self, trial: FrozenTrial) -> FrozenTrial:
        return trial


class _PrunedRankedByScheduler(_StudyView):
    """The study as TPE should see it: pruned trials ranked in the scheduler's direction.

    Upstream (optuna 5.0.0, ``optuna/samplers/_tpe/sampler.py``), TPE ranks PRUNED trials by
    ``(-last_step, value at last_step)`` in ``study.direction`` (``_get_pruned_trial_score``):

    * in a multi-objective study ``study.direction`` raises ("A single direction cannot be
      retrieved from a multi-objective study"), so the first ask after a pruned trial with
      per-epoch values crashes. Optuna never meets this itself because ``Trial.report`` refuses
      multi-objective studies, but trials written through the storage API (as hpsearch's
      Recorder writes them, and as ``add_trial`` allows) have them. Reproduce::

          s = optuna.create_study(directions=["maximize", "minimize"],
                                  sampler=optuna.samplers.TPESampler(n_startup_trials=1))
          s.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params={"x": 0.1},
              distributions={"x": FloatDistribution(0, 1)}, intermediate_values={1: 0.5}))
          s.ask().suggest_float("x", 0, 1)   # RuntimeError in study.direction

    * in a single-objective study the intermediate values are taken in the objective's
      direction, but the early-stopping scheduler may watch another metric in the other
      direction (minimise ``val_loss``, stop on ``val_accuracy``), which ranks pruned trials
      backwards.

    This view answers ``direction`` with the scheduler's direction in multi-objective studies,
    and in single-objective studies whose scheduler direction differs it hands TPE the pruned
    trials with negated intermediate values; so Optuna's own rule (furthest first, then best
    value there) ranks them.
    """

    def __init__(self, study: optuna.Study, progress: StudyDirection) -> None:
        super().__init__(study)
        directions = study.directions
        self._flip = len(directions) == 1 and directions[0] != progress
        self.direction = directions[0] if len(directions) == 1 else progress

    def _view(self, trial: FrozenTrial) -> FrozenTrial:
        if not self._flip or trial.state != TrialState.PRUNED or not trial.intermediate_values:
            return trial
        trial = copy.copy(trial)
        trial.intermediate_values = {
            step: -value for step, value in trial.intermediate_values.items()
        }
        return trial


def scheduler_aware_tpe(
    *, progress_direction: StudyDirection, **kwargs: Any
) -> optuna.samplers.BaseSampler:
    """TPE that ranks pruned trials by how far they got and how good they were there.

    hpsearch stores each epoch of the scheduler's metric as an intermediate value, in every
    study, single- or multi-objective; this sampler shows TPE those values in the scheduler's
    direction (see :class:`_PrunedRankedByScheduler`), so a trial ASHA let run to epoch 4
    counts as better than one it stopped at epoch 1, and among equals the better value wins.

    Args:
        progress_direction: Direction of the scheduler's metric (``scheduler.mode``).
        **kwargs: TPESampler's arguments.
    """
    return ViewedSampler(
        optuna.samplers.TPESampler(**kwargs),
        lambda study: _PrunedRankedByScheduler(study, progress_direction),
    )


class _Scalarised(_StudyView):
    """The study as a single-objective sampler should see a multi-objective one.

    One direction (minimise) and each COMPLETE trial's values replaced by the scalarised loss.
    """

    def __init__(self, study: optuna.Study, scalarisation: Scalarisation) -> None:
        super().__init__(study)
        self._scalarisation = scalarisation
        self.direction = StudyDirection.MINIMIZE
        self.directions = [StudyDirection.MINIMIZE]

    def _is_multi_objective(self) -> bool:
        return False

    def _view(self, trial: FrozenTrial) -> FrozenTrial:
        if trial.state != TrialState.COMPLETE or trial.values is None:
            return trial
        trial = copy.copy(trial)
        trial.values = [self._scalarisation.loss(trial.values)]
        return trial


class ViewedSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that sees the study through a view (see the two views above).

    Args:
        sampler: The sampler doing the work (TPE, CMA-ES).
        view: Makes the view of the study the sampler is shown.
        values: Turns a finished trial's values into what the view's study holds (the
            scalarised loss); None keeps them.
    """

    def __init__(
        self,
        sampler: optuna.samplers.BaseSampler,
        view: Callable[[optuna.Study], Any],
        values: Callable[[Sequence[float]], list[float]] | None = None,
    ) -> None:
        self._sampler = sampler
        self._view = view
        self._values = values

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        """As the wrapped sampler's, on the view."""
        return self._sampler.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        """As the wrapped sampler's, on the view."""
        return self._sampler.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        """As the wrapped sampler's, on the view."""
        return self._sampler.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """As the wrapped sampler's, on the view."""
        self._sampler.before_trial(self._view(study), trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """As the wrapped sampler's, on the view, with the values the view holds."""
        if values is not None and self._values is not None:
            values = self._values(values)
        self._sampler.after_trial(self._view(study), trial, state, values)
