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
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

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


class OptunaSearcher:
    """Chooses each trial's parameters with an Optuna sampler over the stored study.

    The sampler is made anew for every trial, seeded from the study's master seed and the
    trial's number. A resumed run therefore continues the sequence where the stored study left
    it instead of drawing the first run's parameters again (a sampler seeded once per run
    restarts its random stream on every ``hpsearch run``), and a study replays exactly for a
    given history. Samplers keep no state hpsearch relies on between trials: the history they
    learn from is the storage.

    Args:
        spec: The study (searcher settings, master seed, scheduler direction).
    """

    def __init__(self, spec: StudySpec) -> None:
        self._spec = spec.searcher
        self._seed = spec.seed
        self._progress = (
            StudyDirection.MAXIMIZE if spec.scheduler.mode == "max" else StudyDirection.MINIMIZE
        )

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes trial ``number``."""
        seed = derive_seed(self._seed, "sampler", number)
        if self._spec.type == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # constant_liar: Ray keeps several trials running at once; without it every
            # concurrent ask sees the same history and proposes nearly the same point.
            return SchedulerAwareTPESampler(
                progress_direction=self._progress,
                seed=seed,
                n_startup_trials=self._spec.n_startup_trials,
                constant_liar=True,
            )


class _PrunedRankedByScheduler:
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
    value there) ranks them. It relies on TPE reading trials through ``Study._get_trials``:
    the Optuna versions it is tested with are pinned in pyproject.toml, and
    ``tests/test_searchers.py`` checks the ranking's effect on proposals.
    """

    def __init__(self, study: optuna.Study, progress: StudyDirection) -> None:
        self._study = study
        directions = study.directions
        self._flip = len(directions) == 1 and directions[0] != progress
        self.direction = directions[0] if len(directions) == 1 else progress

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return self._oriented(trials)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._oriented(self._study.get_trials(deepcopy=deepcopy, states=states))

    def _oriented(self, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        if not self._flip:
            return list(trials)
        out = []
        for trial in trials:
            if trial.state == TrialState.PRUNED and trial.intermediate_values:
                trial = copy.copy(trial)
                trial.intermediate_values = {
                    step: -value for step, value in trial.intermediate_values.items()
                }
            out.append(trial)
        return out


class SchedulerAwareTPESampler(optuna.samplers.TPESampler):
    """TPE that ranks pruned trials by how far they got and how good they were there.

    hpsearch stores each epoch of the scheduler's metric as an intermediate value, in every
    study, single- or multi-objective; this sampler shows TPE those values in the scheduler's
    direction (see :class:`_PrunedRankedByScheduler`), so a trial ASHA let run to epoch 4
    counts as better than one it stopped at epoch 1, and among equals the better value wins.

    Args:
        progress_direction: Direction of the scheduler's metric (``scheduler.mode``).
        **kwargs: TPESampler's arguments.
    """

    def __init__(self, *, progress_direction: StudyDirection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._progress_direction = progress_direction

    def _view(self, study: optuna.Study) -> optuna.Study:
        return _PrunedRankedByScheduler(study, self._progress_direction)  # type: ignore[return-value]

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
