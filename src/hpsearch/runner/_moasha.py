"""Early stopping for several objectives: asynchronous successive halving by Pareto rank.

ASHA promotes at each rung on one metric, while a study may search a front of validation
accuracy against training time: a fast configuration a little less accurate than the best is
stopped by ASHA although it would lie on the front. MOASHA (Schmucker et al., "Multi-objective
asynchronous successive halving", 2021) ranks the trials seen at a rung by non-dominated
sorting of all the study's objectives instead. Here a trial at a rung goes on when it is on the
rung's first non-dominated front (a point of the front is never stopped), or when it is among
the best ``1/reduction_factor`` of the rung's trials, ranked by front and, within a front, by
NSGA-II crowding distance (isolated points first). Like ASHA it decides asynchronously, on the
trials that reached the rung so far, so the first trial at a rung always goes on.

:class:`Rungs` holds the rule in plain Python (tested without Ray); the Ray scheduler around it
is in :mod:`hpsearch.runner._driver`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: A trial's objectives at a rung, each turned into a value to minimise.
Vector = tuple[float, ...]


def milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The rungs (epochs) below the full budget: grace, grace*rf, grace*rf^2, ..."""
    rungs: list[int] = []
    epoch = float(grace_period)
    while round(epoch) < max_t:
        if not rungs or round(epoch) > rungs[-1]:
            rungs.append(round(epoch))
        epoch *= reduction_factor
    return rungs


def fronts(vectors: Mapping[int, Vector]) -> list[list[int]]:
    """Non-dominated sorting (all objectives minimised): the first front, the second, ..."""

    def dominates(a: Vector, b: Vector) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    left = dict(vectors)
    result: list[list[int]] = []
    while left:
        front = [
            key
            for key, vector in left.items()
            if not any(dominates(other, vector) for k, other in left.items() if k != key)
        ]
        result.append(sorted(front))
        for key in front:
            del left[key]
    return result


def crowding(front: Sequence[int], vectors: Mapping[int, Vector]) -> dict[int, float]:
    """NSGA-II crowding distance of each point of one front (boundary points: infinite)."""
    distance = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for axis in range(len(vectors[front[0]])):
        ordered = sorted(front, key=lambda key: vectors[key][axis])
        low, high = vectors[ordered[0]][axis], vectors[ordered[-1]][axis]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if not math.isfinite(high - low) or high == low:
            continue
        for before, key, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[key] += (vectors[after][axis] - vectors[before][axis]) / (high - low)
    return distance


@dataclass
class Rungs:
    """The MOASHA rule: which trials go on at each rung.

    Args:
        objectives: ``(metric, mode)`` of each objective, mode ``max`` or ``min``.
        grace_period: Epochs every trial gets (the first rung).
        reduction_factor: Keep about 1 in this many at each rung.
        max_t: The full epoch budget (no rung at or above it).
    """

    objectives: Sequence[tuple[str, str]]
    grace_period: int
    reduction_factor: float
    max_t: int
    seen: dict[int, dict[str, Vector]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rungs = milestones(self.grace_period, self.reduction_factor, self.max_t)
        self.seen = {rung: {} for rung in self.rungs}

    def vector(self, result: Mapping[str, object]) -> Vector:
        """The result's objectives, to minimise; a missing or non-finite value is the worst."""
        values = []
        for metric, mode in self.objectives:
            value = result.get(metric)
            if not isinstance(value, int | float) or not math.isfinite(value):
                values.append(math.inf)
            else:
                values.append(-float(value) if mode == "max" else float(value))
        return tuple(values)

    def goes_on(self, trial: str, epoch: int, result: Mapping[str, object]) -> bool:
        """Whether ``trial``, reporting ``result`` at ``epoch``, continues.

        Decided only at a rung; between rungs every trial continues.
        """
        if epoch not in self.seen:
            return True
        rung = self.seen[epoch]
        rung[trial] = self.vector(result)
        keys = list(rung)
        index = {key: i for i, key in enumerate(keys)}
        vectors = {index[key]: rung[key] for key in keys}
        ranked: list[int] = []
        layers = fronts(vectors)
        for front in layers:
            spread = crowding(front, vectors)
            ranked += sorted(front, key=lambda i: (-spread[i], i))
        me = index[trial]
        if me in layers[0]:
            return True
        keep = max(1, math.floor(len(keys) / self.reduction_factor))
        return ranked.index(me) < keep
