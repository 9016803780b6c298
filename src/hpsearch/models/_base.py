"""What every model family shares: the head it ends in, and how a family is described."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hpsearch.models._options import Param

if TYPE_CHECKING:
    import keras

#: Input ranks, as the length of one event's shape (spatial axes, then channels):
#: ``(length, channels)``, ``(height, width, channels)`` and ``(x, y, time, channels)``, the
#: last e.g. a surface-detector grid of waveforms, ``(N, N, T, 2)`` for Telescope Array.
SEQUENCE, IMAGE, VOLUME = 2, 3, 4
RANK_NAMES = {
    SEQUENCE: "sequences (length, channels)",
    IMAGE: "images (height, width, channels)",
    VOLUME: "volumes (x, y, time, channels)",
}

DOWNSAMPLE = Param(
    "downsample",
    "int",
    default=1,
    ge=1,
    doc="Average-pooling factor on the input: every spatial axis of sequences and images, only "
    "the longest axis of volumes (time on a detector grid). 1 keeps every sample; a "
    "recurrent trial on 256-sample pulses is feasible on a 2-core CPU at 4 (64 steps).",
)


def downsample_factors(spatial: tuple[int, ...], downsample: int) -> tuple[int, ...]:
    """The average-pooling factor of each spatial axis for ``downsample``.

    Sequences and images pool every axis by ``downsample``. Volumes pool only their longest
    axis (the last of several equally long ones): on a detector grid ``(N, N, T)`` that is the
    time axis, whose 64-128 bins are what ``downsample`` trades for speed, while pooling the
    6-9 detectors per side would merge neighbouring stations (and ``min(downsample, axis)``
    per axis would still reduce a 7-wide grid to 1 at ``downsample=4``).

    Args:
        spatial: The spatial axes of one event (its shape without the channels).
        downsample: The ``downsample`` option, >= 1.

    Returns:
        One factor per spatial axis; all 1 when ``downsample`` is 1.
    """
    if len(spatial) < 3:
        return (downsample,) * len(spatial)
    longest = max(range(len(spatial)), key=lambda axis: (spatial[axis], axis))
    return tuple(downsample if axis == longest else 1 for axis in range(len(spatial)))


@dataclass(frozen=True)
class Head:
    """What the network outputs, which decides its last layer.

    Attributes:
        kind: ``classification`` (a softmax over ``units`` classes, for a sparse categorical
            cross-entropy) or ``regression`` (``units`` linear outputs, for a mean squared error).
        units: Classes (at least 2: a binary task is two softmax outputs) or regression targets.

    Raises:
        ValueError: ``kind`` is neither, or ``units`` is too small.
    """

    kind: Literal["classification", "regression"]
    units: int

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(
                f"Head.kind must be 'classification' or 'regression', got {self.kind!r}"
            )
        least = 2 if self.kind == "classification" else 1
        if not isinstance(self.units, numbers.Integral) or isinstance(self.units, bool):
            raise ValueError(f"Head.units must be an integer, got {self.units!r}")
        if self.units < least:
            raise ValueError(
                f"Head.units must be >= {least} for {self.kind}, got {self.units}"
                + ("; a binary task has 2 classes" if self.kind == "classification" else "")
            )

    @property
    def activation(self) -> str:
        """The last layer's activation: softmax for classes, none (linear) for regression."""
        return "softmax" if self.kind == "classification" else "linear"


@dataclass(frozen=True)
class Body:
    """What a family's builder gets besides its own options.

    Attributes:
        dims: Spatial axes of the input: 1 for sequences, 2 for images, 3 for volumes.
        regularizer: The L2 penalty for every kernel, or None.
    """

    dims: int
    regularizer: keras.regularizers.Regularizer | None


#: A family's builder: from the (downsampled, noised) input tensor, its checked options and the
#: shared :class:`Body`, to the feature vector the head reads and the model's name.
Builder = Callable[[Any, dict[str, Any], Body], tuple[Any, str]]


@dataclass(frozen=True)
class Family:
    """A model family a study can choose, and the parameters it takes.

    Attributes:
        name: Its name, the ``model.name`` of a trial's parameters.
        description: One line: what it is and where it comes from.
        ranks: Input ranks it accepts (:data:`SEQUENCE`, :data:`IMAGE`, :data:`VOLUME`).
        params: Its parameters (every family takes ``downsample``).
        build: Its :data:`Builder`; it imports Keras only when called.
    """

    name: str
    description: str
    ranks: frozenset[int]
    params: tuple[Param, ...]
    build: Builder

    def accepts(self) -> str:
        """The input shapes it accepts, in words."""
        return " or ".join(RANK_NAMES[rank] for rank in sorted(self.ranks))
