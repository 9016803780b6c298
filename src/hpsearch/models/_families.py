"""Model families a study chooses among, and the one builder that turns a choice into a model.

Seed study 000 compared four families on the xgamma pulses (ResNet-10/16, LSTM-FCN, a plain
3-layer CNN, an LSTM: see ``docs/science.md``); later tasks regress rather than classify, and
read images or volumes (a detector grid of waveforms). So the family is an ordinary search
parameter, decoded as ``{"name": family, **its parameters}``, and every family shares the same
input stem and head:

    input -> [average pooling by ``downsample``] -> [Gaussian noise] -> family body
          -> [dropout] -> dense head (softmax classes or linear targets)

The noise acts on the objective's normalised input (after downsampling, as in
:func:`~hpsearch.models.build_resnet1d`); dropout and the L2 penalty on every kernel apply to
every family alike, so a regularisation setting means the same thing whichever family a trial
took. Importing this module does not import Keras; :func:`build_model` does.

Which families read which events (:func:`families_for_rank` by the length of one event's shape):
sequences ``(length, channels)``: all four; images ``(height, width, channels)`` and volumes
``(x, y, time, channels)``: ``resnet`` and ``cnn``. ``downsample`` pools every axis of sequences
and images but only the longest axis of volumes (see
:func:`~hpsearch.models._base.downsample_factors` for why).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.models._base import (
    IMAGE,
    RANK_NAMES,
    SEQUENCE,
    VOLUME,
    Body,
    Family,
    Head,
    downsample_factors,
)
from hpsearch.models._convnets import CNN_PARAMS, RESNET_PARAMS, build_cnn, build_resnet
from hpsearch.models._grid import GRID_PARAMS, build_counter_grid
from hpsearch.models._options import Param, choose, resolve
from hpsearch.models._recurrent import LSTM_FCN_PARAMS, LSTM_PARAMS, build_lstm, build_lstm_fcn

if TYPE_CHECKING:
    import keras

_FAMILIES = (
    Family(
        "resnet",
        "Residual CNN of Wang, Yan & Oates 2017 (arXiv:1611.06455), depth searched: "
        "ResNet-(3*blocks+1)",
        frozenset({SEQUENCE, IMAGE, VOLUME}),
        RESNET_PARAMS,
        build_resnet,
    ),
    Family(
        "cnn",
        "Plain CNN without shortcuts: Wang et al.'s FCN (arXiv:1611.06455), optional pooling",
        frozenset({SEQUENCE, IMAGE, VOLUME}),
        CNN_PARAMS,
        build_cnn,
    ),
    Family(
        "lstm",
        "Stacked, optionally bidirectional LSTM (cuDNN-compatible)",
        frozenset({SEQUENCE}),
        LSTM_PARAMS,
        build_lstm,
    ),
    Family(
        "lstm_fcn",
        "LSTM-FCN of Karim et al. 2018 (IEEE Access 6:1662, arXiv:1709.05206): "
        "an LSTM beside an FCN",
        frozenset({SEQUENCE}),
        LSTM_FCN_PARAMS,
        build_lstm_fcn,
    ),
    Family(
        "counter_grid",
        "Detector grids (seed 002): trace convolutions shared by every counter, then 2-D "
        "convolutions over the grid",
        frozenset({VOLUME}),
        GRID_PARAMS,
        build_counter_grid,
    ),
)

#: Every model family by name.
FAMILIES: Mapping[str, Family] = {family.name: family for family in _FAMILIES}

#: The regularisation group; every key optional, 0 (off) by default.
REGULARISATION = (
    Param("dropout", "float", default=0.0, ge=0.0, lt=1.0, doc="Dropout rate before the head."),
    Param("l2", "float", default=0.0, ge=0.0, doc="L2 penalty on every kernel."),
    Param(
        "noise_std",
        "float",
        default=0.0,
        ge=0.0,
        doc="Std of Gaussian noise added to the normalised input while training.",
    ),
)


def families_for_rank(rank: int) -> list[str]:
    """The families that read events of ``rank`` axes (``len`` of one event's shape).

    Args:
        rank: 2 for sequences ``(length, channels)``, 3 for images ``(height, width,
            channels)``, 4 for volumes ``(x, y, time, channels)``.

    Returns:
        Their names, in the order of :data:`FAMILIES`; empty for a rank no family reads.

    Raises:
        ValueError: ``rank`` is not an integer.
    """
    if not isinstance(rank, numbers.Integral) or isinstance(rank, bool):
        raise ValueError(f"rank must be an integer (len of one event's shape), got {rank!r}")
    return [name for name, family in FAMILIES.items() if rank in family.ranks]


def _rank_hint(rank: int) -> str:
    """Which families read ``rank``, or which ranks any family reads, for an error message."""
    fitting = families_for_rank(rank)
    if fitting:
        return f"families for this rank: {', '.join(fitting)}"
    known = "; ".join(f"rank {r}: {words}" for r, words in sorted(RANK_NAMES.items()))
    return f"no family reads rank {rank}; families read {known}"


def check_input_shape(family: Family, input_shape: tuple[int, ...], downsample: int) -> None:
    """Check that ``family`` reads inputs of ``input_shape``, downsampled by ``downsample``.

    Only the axes that ``downsample`` pools must be at least ``downsample`` long (every spatial
    axis of sequences and images, the longest of volumes), so the message names that axis.

    Raises:
        ValueError: The shape is not positive integers, has a rank the family does not
            accept (the message lists the families that do), or a pooled axis shorter than
            ``downsample``.
    """
    where = f"model {family.name!r}"
    valid = isinstance(input_shape, tuple) and all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1
        for size in input_shape
    )
    if not valid:
        raise ValueError(
            f"{where}: input_shape must be a tuple of positive integers (one event's shape, "
            f"no batch axis), got {input_shape!r}"
        )
    if len(input_shape) not in family.ranks:
        raise ValueError(
            f"{where} accepts {family.accepts()}, got input_shape {input_shape}; "
            + _rank_hint(len(input_shape))
        )
    spatial = input_shape[:-1]
    factors = downsample_factors(spatial, downsample)
    pooled = [axis for axis, factor in enumerate(factors) if factor > 1]
    short = [axis for axis in pooled if spatial[axis] < downsample]
    if short:
        axis = min(short, key=lambda a: spatial[a])
        which = (
            "longest axis (the one downsample pools in volumes)" if len(spatial) == 3 else "axis"
        )
        raise ValueError(
            f"{where}: downsample {downsample} exceeds the input's {which} {axis} of "
            f"{spatial[axis]} in input_shape {input_shape}; choose downsample <= "
            f"{spatial[axis]}"
        )


def build_model(
    model: Mapping[str, Any],
    *,
    input_shape: tuple[int, ...],
    head: Head,
    regularisation: Mapping[str, Any] | None = None,
) -> keras.Model:
    """Build (not compile) the model a trial's decoded ``model`` choice describes.

    Args:
        model: ``{"name": family, **its parameters}``; see :data:`FAMILIES` for each family's
            parameters and their defaults.
        input_shape: One event's shape: ``(length, channels)`` for every family,
            ``(height, width, channels)`` or ``(x, y, time, channels)`` for ``resnet`` and
            ``cnn`` (see :func:`families_for_rank`).
        head: What the network outputs.
        regularisation: ``dropout``, ``l2``, ``noise_std`` (each optional, default 0).

    Returns:
        An uncompiled ``keras.Model`` named after its architecture (``resnet10``, ``cnn3``,
        ``lstm1``, ``bilstm2``, ``lstm_fcn``).

    Raises:
        ValueError: The family is unknown, a key is missing, unknown or invalid, or the family
            does not read inputs of this shape; the message names the key and lists the
            allowed ones (for a shape, the families that read its rank).
    """
    name, options = choose("model", model, {n: f.params for n, f in FAMILIES.items()})
    family = FAMILIES[name]
    if regularisation is not None and not isinstance(regularisation, Mapping):
        raise ValueError(
            f"`regularisation` must be a mapping of dropout, l2, noise_std, got {regularisation!r}"
        )
    regular = resolve("regularisation", regularisation or {}, REGULARISATION)
    if not isinstance(head, Head):
        raise ValueError(f"head must be a Head, got {head!r}")
    shape = tuple(input_shape) if isinstance(input_shape, list) else input_shape
    downsample = options["downsample"]
    check_input_shape(family, shape, downsample)

    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(regular["l2"]) if regular["l2"] > 0 else None
    body = Body(dims=len(shape) - 1, regularizer=regularizer)
    inputs = keras.Input(shape=shape)
    x = inputs
    if downsample > 1:
        pool = (layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D)
        x = pool[body.dims - 1](pool_size=downsample_factors(shape[:-1], downsample))(x)
    if regular["noise_std"] > 0:
        x = layers.GaussianNoise(regular["noise_std"])(x)
    x, model_name = family.build(x, options, body)
    if regular["dropout"] > 0:
        x = layers.Dropout(regular["dropout"])(x)
    outputs = layers.Dense(head.units, activation=head.activation, kernel_regularizer=regularizer)(
        x
    )
    return keras.Model(inputs, outputs, name=model_name)
