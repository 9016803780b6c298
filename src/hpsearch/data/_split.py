"""Cutting a study's events into train, validation and test parts.

The parts are lists of contiguous ``[start, stop)`` blocks of event indices, so that reading a
part from disk is a few slices, never point-by-point fancy indexing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hpsearch.seeding import derive_rng

__all__ = ["Split", "make_split"]

IntArray = npt.NDArray[np.int64]

_PARTS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """Train, validation and test events as ``[start, stop)`` blocks of event indices.

    Each part is an int64 array of shape ``(k, 2)``. Blocks are listed in the seeded random
    order they were drawn in, not in file order, so "the first blocks of a part" (what
    ``BatchReader(max_events=...)`` takes) is a random sample spread over the whole file, not
    its beginning. Sort by start for file order.

    Attributes:
        train: Blocks of the training part.
        val: Blocks of the validation part.
        test: Blocks of the test part.
    """

    train: IntArray
    val: IntArray
    test: IntArray

    def part(self, name: str) -> IntArray:
        """The blocks of part ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in _PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {', '.join(_PARTS)}")
        blocks: IntArray = getattr(self, name)
        return blocks

    def n_events(self, part: str) -> int:
        """Number of events in part ``part`` (``"train"``, ``"val"`` or ``"test"``)."""
        blocks = self.part(part)
        return int((blocks[:, 1] - blocks[:, 0]).sum())


def make_split(
    n_events: int,
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    block_size: int = 32,
) -> Split:
    """Split ``n_events`` events into train, validation and test blocks.

    The events are cut into contiguous blocks of ``block_size`` so that reading a block from
    disk is one slice; the blocks are shuffled (by ``seed``) so that every part samples the
    whole file, even one sorted by class or by time. The shuffled sequence is then cut at the
    exact event counts, so a part's size is its fraction of ``n_events`` rounded to the nearest
    event (one block may be shared by two parts, each getting a contiguous piece of it).

    Deterministic in all four arguments: the same study always gets the same split. The seed
    is used through :func:`hpsearch.seeding.derive_rng` under the name ``"split"``, so passing
    the study's master seed does not correlate the split with other random streams.

    Args:
        n_events: Number of events in the file.
        seed: Seed of the split.
        fractions: Fractions of train, validation and test; each > 0, summing to 1.
        block_size: Events per block; larger blocks read faster but mix less.

    Returns:
        The :class:`Split`; its parts are disjoint and together cover every event once.

    Raises:
        ValueError: Fractions that are not three positive numbers summing to 1, a block_size
            below 1, or too few events to give every part at least one.
    """
    if len(fractions) != 3:
        raise ValueError(
            f"split fractions must be three numbers (train, val, test), got {fractions!r}"
        )
    if not all(math.isfinite(f) and f > 0 for f in fractions):
        raise ValueError(
            f"split fractions must each be > 0, got {fractions!r}; give every part some events"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"split fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g})"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if n_events < 3:
        raise ValueError(f"need at least 3 events to split into train/val/test, got {n_events}")

    n_val = max(1, round(fractions[1] * n_events))
    n_test = max(1, round(fractions[2] * n_events))
    n_train = n_events - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"{n_events} events are too few for fractions {fractions!r}: the training part "
            "would be empty"
        )

    starts = np.arange(0, n_events, block_size, dtype=np.int64)
    stops = np.minimum(starts + block_size, n_events)
    order = derive_rng(seed, "split").permutation(len(starts))
    starts, stops = starts[order], stops[order]
    # Position of every block in the shuffled sequence of events.
    ends = np.cumsum(stops - starts)
    begins = ends - (stops - starts)

    parts: list[IntArray] = []
    for lo, hi in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n_events)):
        # Blocks overlapping [lo, hi) of the shuffled sequence, clipped to it.
        take = (ends > lo) & (begins < hi)
        a = starts[take] + np.maximum(lo - begins[take], 0)
        b = starts[take] + np.minimum(hi - begins[take], stops[take] - starts[take])
        blocks = np.stack([a, b], axis=1).astype(np.int64)
        blocks.setflags(write=False)
        parts.append(blocks)
    return Split(train=parts[0], val=parts[1], test=parts[2])
