"""The hyperopt converter: hyperopt's TPE proposing trials of hpsearch's conditional spaces.

All of hyperopt's quirks live here and nowhere else:

* A :class:`~hpsearch.spec.Choice` becomes ``hp.choice(name, [one dict per option])`` holding
  each option's own expressions, so hyperopt's TPE knows which parameters belong to which
  branch (a parameter is observed only in the trials that took its branch).
* hyperopt stores a categorical's (and a choice's) *index*, not its value; the converter maps
  indices back to the declared choices, so bools, ``None`` and mixed types come back exactly.
* ``hp.loguniform`` takes log bounds; ``hp.quniform`` rounds to multiples of ``q`` counted from
  0, not from ``low``, and can round past either end. Every stepped range (integers included)
  is therefore drawn as an index ``k`` of its grid and mapped to ``low + k * step`` (for
  floats in decimal, so 0.1 + 2 * 0.1 is 0.3, not 0.30000000000000004); a
  log-scaled integer range is ``hp.qloguniform`` on ``[low - 0.5, high + 0.5]`` so that each
  integer gets its share of the log scale (Optuna's convention). Whatever hyperopt draws is
  clipped into range, so a value is always in ``[low, high]`` and on its grid.
* A parameter with one value (``low == high``, one choice, a choice of one option) is not
  given to hyperopt: its TPE divides by the width of the range. The value is filled in, and a
  choice of one option contributes its option's parameters directly.
* hyperopt minimises one loss. COMPLETE trials enter through the study's
  :class:`~hpsearch.searchers.Scalarisation` (the first objective by default).

hyperopt keeps no state here between trials: every proposal rebuilds hyperopt's ``Trials`` from
the stored study (whichever searcher made its trials), so a resumed study warms hyperopt from
storage and a given history and seed always give the same proposal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import hyperopt
import optuna
from hyperopt import hp
from hyperopt.base import JOB_STATE_DONE, JOB_STATE_RUNNING
from optuna.trial import FrozenTrial, TrialState

from hpsearch.searchers._base import ProposalSampler, Scalarisation, Searcher
from hpsearch.seeding import derive_seed
from hpsearch.spec import CategoricalParam, Choice, FloatParam, IntParam, Param, SearchSpace, Study
from hpsearch.spec._space import Node

#: How a parameter is drawn by hyperopt (see :class:`Label`).
Kind = Literal["index", "uniform", "loguniform", "grid", "logint"]


def only_value(param: Param) -> Any:
    """The value of a parameter that takes one value (``size() == 1``)."""
    if isinstance(param, CategoricalParam):
        return param.choices[0]
    if isinstance(param, IntParam):
        return int(param.low)
    return float(param.low)


def _single(param: Param) -> bool:
    return param.size() == 1


def _points(param: FloatParam | IntParam) -> int:
    """How many grid points a stepped range has."""
    return param.size() or 1


@dataclass(frozen=True)
class Label:
    """One hyperopt label: how an hpsearch parameter is drawn, and its raw value read back.

    The raw value is what hyperopt keeps in a trial document's ``misc.vals``:

    * ``index``: categoricals and choices, ``hp.choice``; raw = the choice's position;
    * ``uniform`` / ``loguniform``: unstepped float ranges; raw = the value;
    * ``grid``: stepped ranges, every non-log integer range included, drawn as an index
      ``k`` with ``hp.quniform(-0.5, n - 0.5, 1)``: each of the ``n`` grid points is equally
      likely a priori (bounds at integers would halve the ends' chances) and the index stays
      ordinal, so TPE's Parzen estimator smooths over neighbouring steps, as it does for a
      range, instead of treating them as unrelated categories (``hp.randint``); raw = ``k``;
    * ``logint``: log-scaled integers, ``hp.qloguniform(log(low - 0.5), log(high + 0.5), 1)``;
      raw = the value.

    Attributes:
        name: The parameter's dotted name, used as hyperopt's label.
        param: The parameter (a choice as :meth:`Choice.as_param`).
        kind: How it is drawn.
    """

    name: str
    param: Param
    kind: Kind

    @classmethod
    def of(cls, name: str, param: Param) -> Label:
        """The label of ``param``."""
        kind: Kind
        if isinstance(param, CategoricalParam):
            kind = "index"
        elif isinstance(param, IntParam):
            kind = "logint" if param.log else "grid"
        elif param.step is not None:
            kind = "grid"
        else:
            kind = "loguniform" if param.log else "uniform"
        return cls(name, param, kind)

    def expression(self, options: Sequence[Any] | None = None) -> Any:
        """The hyperopt expression of this label (for a choice: over ``options``' dicts)."""
        param = self.param
        if isinstance(param, CategoricalParam):
            return hp.choice(self.name, list(options or range(len(param.choices))))
        if self.kind == "grid":
            return hp.quniform(self.name, -0.5, _points(param) - 0.5, 1)
        if self.kind == "logint":
            return hp.qloguniform(
                self.name, math.log(param.low - 0.5), math.log(param.high + 0.5), 1
            )
        if self.kind == "loguniform":
            return hp.loguniform(self.name, math.log(param.low), math.log(param.high))
        return hp.uniform(self.name, param.low, param.high)

    def encode(self, value: Any) -> int | float:
        """The raw value hyperopt would have drawn for ``value``.

        Raises:
            ValueError: ``value`` is none of a categorical's choices, or not a number.
        """
        param = self.param
        if isinstance(param, CategoricalParam):
            return _position(param.choices, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.name}: {value!r} is not a number")
        if self.kind == "grid":
            steps = (value - param.low) / (param.step or 1)
            return float(_clip(round(steps), 0, _points(param) - 1))
        return float(_clip(value, param.low, param.high))

    def decode(self, raw: Any) -> Any:
        """The parameter's value for hyperopt's raw value, in range and as plain Python."""
        param = self.param
        if isinstance(param, CategoricalParam):
            return param.choices[_clip(round(float(raw)), 0, len(param.choices) - 1)]
        if self.kind == "grid":
            k = _clip(round(float(raw)), 0, _points(param) - 1)
            if isinstance(param, IntParam):
                return param.low + k * param.step
            # In decimal, so a grid point reads as written (0.3, not 0.30000000000000004).
            value = Decimal(repr(param.low)) + k * Decimal(repr(param.step))
            return _clip(float(value), param.low, param.high)
        if isinstance(param, IntParam):  # logint
            return _clip(round(float(raw)), param.low, param.high)
        return _clip(float(raw), param.low, param.high)


def _clip(value: Any, low: Any, high: Any) -> Any:
    return min(max(value, low), high)


def _position(choices: Sequence[Any], value: Any) -> int:
    """Where ``value`` is in ``choices``, by type and value (``True`` is not ``1``)."""
    for index, choice in enumerate(choices):
        if type(choice) is type(value) and choice == value:
            return index
    for index, choice in enumerate(choices):  # e.g. a numpy scalar for a plain one
        if choice == value:
            return index
    raise ValueError(f"{value!r} is none of the choices {list(choices)}")


class HyperoptSpace:
    """hpsearch's search space as hyperopt's expression, and trial values both ways.

    Args:
        space: The study's search space.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.labels: dict[str, Label] = {}
        self.expression = self._group(space.tree, "")

    def _group(self, tree: Mapping[str, Node], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, node in tree.items():
            name = f"{prefix}{key}"
            if isinstance(node, Choice):
                bodies = [
                    self._group(body, f"{name}.{option}.") for option, body in node.options.items()
                ]
                if len(bodies) == 1:
                    out[key] = bodies[0]
                else:
                    out[key] = self._label(name, node.as_param()).expression(bodies)
            elif isinstance(node, FloatParam | IntParam | CategoricalParam):
                if not _single(node):
                    out[key] = self._label(name, node).expression()
            elif isinstance(node, dict):
                out[key] = self._group(node, name + ".")
        return out

    def _label(self, name: str, param: Param) -> Label:
        label = Label.of(name, param)
        self.labels[name] = label
        return label

    def domain(self) -> Any:
        """The hyperopt ``Domain`` of the expression (its identity objective is never run)."""
        return hyperopt.Domain(lambda config: config, self.expression)

    def encode(self, flat: Mapping[str, Any]) -> dict[str, list[int | float]]:
        """A trial's stored values as hyperopt's ``misc.vals``: ``[raw]``, or ``[]`` if inactive.

        Raises:
            KeyError: A value of the trial's active branches is missing.
            ValueError: A value is none of its parameter's choices, or not a number.
        """
        active = self.space.sample(lambda name, param: flat[name])
        return {
            name: [label.encode(active[name])] if name in active else []
            for name, label in self.labels.items()
        }

    def decode(self, vals: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        """Flat values (active branches only) of hyperopt's ``misc.vals``.

        Raises:
            RuntimeError: hyperopt left out a value the drawn branches make active: its
                conditional structure and the space's disagree (a bug of this converter).
        """

        def draw(name: str, param: Param) -> Any:
            label = self.labels.get(name)
            if label is None:
                return only_value(param)
            raw = vals.get(name) or []
            if len(raw) != 1:
                raise RuntimeError(
                    f"hyperopt drew {raw!r} for {name!r}, which the drawn branches make active"
                )
            return label.decode(raw[0])

        return self.space.sample(draw)


def judged_losses(
    trials: Iterable[FrozenTrial], scalarisation: Scalarisation, progress_mode: str
) -> dict[int, float]:
    """The loss hyperopt sees for each judged (COMPLETE or PRUNED) trial, by trial number.

    hyperopt's TPE reads losses only through their order (``ap_split_trials`` sorts them to
    split the trials into good and bad), so each trial gets its rank in this order:

    1. COMPLETE trials by their scalarised loss (a non-finite one last among them);
    2. then PRUNED trials, worse than every complete one: those the scheduler let run further
       first, and among equals the better last value of the scheduler's metric in its own
       direction (``progress_mode``), as optuna-tpe ranks them; one that reported no epoch
       last. The scheduler's metric is never mixed with the objectives' losses: it may not
       be an objective at all.

    Equal keys share a rank. A rank, unlike an invented loss for pruned trials, keeps them
    below every complete trial whatever the losses' scale.

    Args:
        trials: Stored trials; those of other states are left out.
        scalarisation: How a COMPLETE trial's objective values become one loss.
        progress_mode: ``max`` or ``min``, the scheduler's direction.
    """
    keys: dict[int, tuple[int, float, float]] = {}
    for trial in trials:
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            loss = scalarisation.loss(trial.values)
            keys[trial.number] = (0, loss if math.isfinite(loss) else math.inf, 0.0)
        elif trial.state == TrialState.PRUNED:
            keys[trial.number] = (1, *_pruned_score(trial, progress_mode))
    ranks = {key: float(rank) for rank, key in enumerate(sorted(set(keys.values())))}
    return {number: ranks[key] for number, key in keys.items()}


def _pruned_score(trial: FrozenTrial, progress_mode: str) -> tuple[float, float]:
    if not trial.intermediate_values:
        return (1.0, math.inf)
    step, value = max(trial.intermediate_values.items())
    if not math.isfinite(value):
        return (-float(step), math.inf)
    return (-float(step), -value if progress_mode == "max" else value)


class HyperoptSearcher(Searcher):
    """hyperopt's TPE over the stored study, one scalar loss, warmed from storage every trial.

    What hyperopt sees of each stored trial (``study.get_trials()``, whoever proposed it):

    * COMPLETE and PRUNED trials: their values and a loss, see :func:`judged_losses`;
    * RUNNING trials (proposed to concurrent workers): their values without a result, which
      hyperopt's TPE scores as an infinite loss, its own handling of in-flight jobs (as under
      Ray's ``HyperOptSearch``). That is a pessimistic lie, like optuna-tpe's constant liar:
      concurrent proposals are steered away from each other's points. They do not count
      towards ``n_startup_trials``, which counts judged trials as Optuna's samplers do.
    * FAIL trials are left out: a failed or cut trial says nothing about its configuration;
      so are WAITING trials, and any stored trial whose values the space cannot read (a
      RUNNING trial another process is still suggesting).

    Args:
        study: The study (space, master seed, objectives, searcher and scheduler settings).
    """

    name = "hyperopt-tpe"

    def __init__(self, study: Study) -> None:
        spec = study.spec
        self._space = HyperoptSpace(study.space)
        self._domain = self._space.domain() if self._space.labels else None
        self._seed = spec.seed
        self._n_startup = spec.searcher.n_startup_trials
        self._progress_mode = spec.scheduler.mode
        self._scalarisation = Scalarisation.of(
            [o.metric for o in spec.objectives],
            [o.direction for o in spec.objectives],
            spec.searcher.weights,
        )

    def objectives_note(self) -> str:
        """How the objectives reach hyperopt: one scalarised loss."""
        return "hyperopt-tpe: single-objective, " + self._scalarisation.describe()

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes the next trial with hyperopt's TPE.

        Nothing is kept in it: :meth:`propose` reads the history and seeds hyperopt from the
        trial it is asked for, which is trial ``number`` when the Recorder asks.
        """
        return ProposalSampler(self.propose)

    def propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        """What hyperopt's TPE proposes for ``trial``, given the stored study.

        Seeded from the master seed and the trial's number, so the same history gives the
        same proposal, and a resumed study goes on with new points.
        """
        if self._domain is None:  # every parameter takes one value: nothing to search
            return self._space.decode({})
        history, pending = self.history(study.get_trials(deepcopy=False), trial.number)
        seed = derive_seed(self._seed, "sampler", trial.number)
        docs = hyperopt.tpe.suggest(
            [trial.number],
            self._domain,
            history,
            seed,
            n_startup_jobs=self._n_startup + pending,
            verbose=False,
        )
        return self._space.decode(docs[0]["misc"]["vals"])

    def history(self, trials: Sequence[FrozenTrial], current: int) -> tuple[Any, int]:
        """The stored trials other than ``current``, as hyperopt's ``Trials``.

        Returns:
            The ``Trials`` (ids are Optuna trial numbers) and how many of them are RUNNING.
        """
        others = [t for t in trials if t.number != current]
        losses = judged_losses(others, self._scalarisation, self._progress_mode)
        history = hyperopt.Trials()
        docs = []
        pending = 0
        for trial in others:
            running = trial.state == TrialState.RUNNING
            if trial.number not in losses and not running:
                continue
            try:
                vals = self._space.encode(trial.params)
            except (KeyError, ValueError):
                continue
            idxs = {name: [trial.number] if raw else [] for name, raw in vals.items()}
            misc = {
                "tid": trial.number,
                "cmd": self._domain.cmd if self._domain is not None else None,
                "workdir": None,
                "idxs": idxs,
                "vals": vals,
            }
            if running:
                result: dict[str, Any] = {"status": "new"}
                pending += 1
            else:
                result = {"loss": losses[trial.number], "status": "ok"}
            (doc,) = history.new_trial_docs([trial.number], [None], [result], [misc])
            doc["state"] = JOB_STATE_RUNNING if running else JOB_STATE_DONE
            docs.append(doc)
        history.insert_trial_docs(docs)
        history.refresh()
        return history, pending
