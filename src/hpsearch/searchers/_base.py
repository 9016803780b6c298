"""What every searcher is: something that hands the Recorder an Optuna sampler for each trial.

hpsearch keeps one record of a study, an ordinary Optuna study written by the Recorder. A
searcher only decides what to try next, so every searcher, whichever library it comes from,
reaches the Recorder as an Optuna sampler for the trial about to start:

* Optuna's own samplers (TPE, NSGA-II, GP, CMA-ES) are that already;
* other libraries (hyperopt, Ray Tune's sampling) propose a whole trial at once, which a
  :class:`ProposalSampler` hands to Optuna's define-by-run suggest calls.

Either way the Recorder asks and suggests through the one Optuna converter, so the stored
parameter names and distributions are the same whichever library proposed the trial, and the
searcher is warmed on a resumed run by reading the stored trials, never by its own state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

#: Proposes the flat parameters (dotted name -> value, active branches only) of one trial.
Propose = Callable[[optuna.Study, FrozenTrial], dict[str, Any]]


class Searcher(ABC):
    """Decides what each trial tries; never writes results.

    Attributes:
        name: The study file's ``searcher.type``.
    """

    name: str

    @abstractmethod
    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes trial ``number`` (seeded for that number)."""

    @abstractmethod
    def objectives_note(self) -> str:
        """One line on how the study's objectives reach the algorithm (stored with the study)."""


class ProposalSampler(optuna.samplers.BaseSampler):
    """Hands Optuna the parameters another library proposed for a trial.

    ``before_trial`` asks ``propose`` for the whole trial once; each ``suggest_*`` of the
    define-by-run walk then takes its value from that proposal. Enqueued trials (fixed
    parameters) are left to Optuna, which answers them without any sampler. A searcher makes
    one for every trial (see :meth:`Searcher.sampler`), so there is nothing to forget once the
    trial ends: it has no ``after_trial``, which spares the Recorder a read of the trial at
    every ending (0.8 ms of the driver's 2.4 ms per ending, measured with
    ``benchmarks/recorder_cost.py``).

    Args:
        propose: The other library's proposal for a new trial, given the study's history.
    """

    def __init__(self, propose: Propose) -> None:
        self._propose = propose
        self._proposals: dict[int, dict[str, Any]] = {}

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        """None: the proposal is made whole in :meth:`before_trial`."""
        return {}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        """None: see :meth:`infer_relative_search_space`."""
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Ask the other library for this trial's parameters."""
        if "fixed_params" not in trial.system_attrs:
            self._proposals[trial.number] = self._propose(study, trial)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        """The proposed value of ``param_name``.

        Raises:
            RuntimeError: The proposal lacks a parameter its own branches make active (a bug
                in the converter, not in the user's space).
        """
        proposal = self._proposals.get(trial.number, {})
        if param_name not in proposal:
            raise RuntimeError(
                f"the searcher proposed no value for {param_name!r} (proposed: {sorted(proposal)})"
            )
        return proposal[param_name]


@dataclass(frozen=True)
class Scalarisation:
    """How a single-objective algorithm sees a multi-objective study: one loss to minimise.

    ``loss = sum(weight_i * signed_i)``, where a minimised objective enters as it is and a
    maximised one negated. The default weights take the first objective alone.

    Attributes:
        metrics: The study's objective metrics.
        directions: ``maximize``/``minimize`` of each.
        weights: One weight per objective.
    """

    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    weights: tuple[float, ...]

    @classmethod
    def of(
        cls, metrics: Sequence[str], directions: Sequence[str], weights: Sequence[float] | None
    ) -> Scalarisation:
        """The scalarisation a study file asks for (``searcher.weights``; default: the first)."""
        chosen = tuple(weights) if weights else (1.0,) + (0.0,) * (len(metrics) - 1)
        return cls(tuple(metrics), tuple(directions), chosen)

    def loss(self, values: Sequence[float]) -> float:
        """The loss of a COMPLETE trial's objective values."""
        return float(
            sum(
                w * (v if d == "minimize" else -v)
                for w, v, d in zip(self.weights, values, self.directions, strict=True)
            )
        )

    def describe(self) -> str:
        """E.g. ``minimises -val_accuracy; train_seconds not seen``."""
        terms = []
        for weight, metric, direction in zip(
            self.weights, self.metrics, self.directions, strict=True
        ):
            if weight:
                sign = "" if direction == "minimize" else "-"
                factor = "" if weight == 1 else f"{weight:g}*"
                terms.append(f"{factor}{sign}{metric}")
        unseen = [m for w, m in zip(self.weights, self.metrics, strict=True) if not w]
        text = "minimises " + " + ".join(terms)
        if unseen:
            text += f"; {', '.join(unseen)} not seen by the searcher"
        return text
