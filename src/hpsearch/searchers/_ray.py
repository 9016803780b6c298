"""The Ray Tune converter: random search with Ray's sampling domains, and grid search.

Ray's quirks live here: ``Integer(low, high)`` excludes ``high`` (hpsearch's ranges include
both ends), and ``quantized(q)`` rounds to multiples of ``q`` counted from 0, not from ``low``,
so a stepped range is drawn as an index ``k`` with ``low + k * step``. Ray's domains are flat;
the conditional structure comes from :meth:`SearchSpace.sample`, which draws a choice first and
then only the chosen option's parameters.

Both searchers keep no state: random search seeds each trial from the master seed and the
trial's number; grid search takes the first point of its fixed enumeration that the stored
study has not tried, so a resumed study goes on where it stopped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import InputError
from hpsearch.lifecycle import counts_against_budget
from hpsearch.searchers._base import ProposalSampler, Searcher
from hpsearch.seeding import derive_seed
from hpsearch.spec import (
    CategoricalParam,
    Choice,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
    Study,
)
from hpsearch.spec._space import Node


def domain(param: Param) -> Any:
    """Ray Tune's sampling domain for one parameter (a stepped range: its index)."""
    from ray.tune.search import sample

    if isinstance(param, CategoricalParam):
        return sample.Categorical(list(param.choices)).uniform()
    if param.step is not None and not (isinstance(param, IntParam) and param.step == 1):
        steps = param.size()
        return sample.Integer(0, int(steps or 1)).uniform()  # k in [0, steps): high excluded
    if isinstance(param, IntParam):
        ints = sample.Integer(param.low, param.high + 1)  # Ray excludes the upper bound
        return ints.loguniform() if param.log else ints.uniform()
    floats = sample.Float(param.low, param.high)
    return floats.loguniform() if param.log else floats.uniform()


def draw_random(param: Param, rng: np.random.Generator) -> Any:
    """One value of ``param`` drawn with Ray's domain, as a plain Python value in range."""
    if isinstance(param, FloatParam | IntParam) and param.low == param.high:
        return param.low
    value = domain(param).sample(random_state=rng)
    if isinstance(param, CategoricalParam):
        return _plain(value)
    if param.step is not None and not (isinstance(param, IntParam) and param.step == 1):
        value = param.low + int(value) * param.step
        value = min(value, param.high)  # float steps: no rounding past the end
    if isinstance(param, IntParam):
        return int(value)
    return float(value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class RandomSearcher(Searcher):
    """Random search: every parameter drawn with Ray Tune's sampling domains.

    Args:
        study: The study (space, master seed).
    """

    name = "random"

    def __init__(self, study: Study) -> None:
        self._space = study.space
        self._seed = study.spec.seed

    def objectives_note(self) -> str:
        """Random search reads no results."""
        return "random: draws without looking at results (all objectives reported, none used)"

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """Draws trial ``number`` from its own seeded stream."""
        rng = np.random.default_rng(derive_seed(self._seed, "sampler", number))

        def propose(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
            return self._space.sample(lambda name, param: draw_random(param, rng))

        return ProposalSampler(propose)


def grid_values(param: Param) -> list[Any]:
    """Every value of a finite parameter, in order (what ``tune.grid_search`` would list)."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        return list(range(param.low, param.high + 1, param.step))
    size = param.size()
    if size is None:
        raise ValueError("a float range without `step` has no grid")
    step = param.step or 0.0  # size() is not None: a float range with a step, or low == high
    return [min(param.low + k * step, param.high) for k in range(size)]


def grid(tree: Mapping[str, Node], prefix: str = "") -> Iterator[dict[str, Any]]:
    """Every point of a finite (conditional) space: options add, groups multiply."""
    parts: list[list[dict[str, Any]]] = []
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node, Choice):
            points = [
                {name: option, **point}
                for option, body in node.options.items()
                for point in grid(body, f"{name}.{option}.")
            ]
        elif isinstance(node, FloatParam | IntParam | CategoricalParam):
            points = [{name: value} for value in grid_values(node)]
        elif isinstance(node, dict):
            points = list(grid(node, name + "."))
        else:
            continue
        parts.append(points)
    for combination in itertools.product(*parts):
        merged: dict[str, Any] = {}
        for point in combination:
            merged.update(point)
        yield merged


def _infinite(space: SearchSpace) -> list[str]:
    return [
        name
        for name, param in space.params().items()
        if isinstance(param, FloatParam) and param.size() is None
    ]


class GridSearcher(Searcher):
    """Grid search over a finite space, in a fixed order, skipping points already tried.

    Args:
        study: The study (space, trial budget, ``searcher.allow_partial``).

    Raises:
        InputError: A float range has no ``step`` (the grid is infinite), or the grid has more
            points than ``budget.trials`` and the study does not allow a partial grid.
    """

    name = "grid"

    def __init__(self, study: Study) -> None:
        space = study.space
        infinite = _infinite(space)
        if infinite:
            raise InputError(
                space.source,
                f"params.{infinite[0]}",
                f"grid search needs finite ranges, but {infinite} are continuous",
                "give each float range a `step`, or use another searcher (optuna-tpe, random)",
            )
        size = space.size() or 0
        budget = study.spec.budget.trials
        if size > budget and not study.spec.searcher.allow_partial:
            raise InputError(
                study.source,
                "budget.trials",
                f"the grid has {size} points but budget.trials is {budget}",
                f"raise budget.trials to {size}, or set `searcher.allow_partial: true` to run "
                "the first points only",
            )
        self._space = space
        self.size = size

    def objectives_note(self) -> str:
        """Grid search reads no results."""
        return f"grid: {self.size} points in a fixed order (all objectives reported, none used)"

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """Proposes the first grid point the study has not tried."""

        def propose(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
            tried = {
                _key(t.params)
                for t in study.get_trials(deepcopy=False)
                if t.number != trial.number
                and (
                    t.state == TrialState.RUNNING
                    or counts_against_budget(t.state.name, t.user_attrs.get("stop_reason"))
                )
            }
            for point in grid(self._space.tree):
                if _key(point) not in tried:
                    return point
            raise RuntimeError("every grid point has been tried")

        return ProposalSampler(propose)


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A comparable form of a point: floats by repr, so 0.1 + 0.2 style noise is kept apart."""
    return tuple(sorted((name, repr(_round(value))) for name, value in params.items()))


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 12)
    return value
