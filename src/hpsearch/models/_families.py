"""Model families a study chooses among, and the one builder that turns a choice into a model.

Seed study 000 compared four families on the xgamma pulses (ResNet-10/16, LSTM-FCN, a plain
3-layer CNN, an LSTM: see ``docs/science.md``); later tasks regress rather than classify, and
read images. So the family is an ordinary search parameter, decoded as ``{"name": family,
**its parameters}``, and every family shares the same input stem and head:

    input -> [average pooling by ``downsample``] -> [Gaussian noise] -> family body
          -> [dropout] -> dense head (softmax classes or linear targets)

The noise acts on the objective's normalised input (after downsampling, as in
:func:`~hpsearch.models.build_resnet1d`); dropout and the L2 penalty on every kernel apply to
every family alike, so a regularisation setting means the same thing whichever family a trial
took. Importing this module does not import Keras; :func:`build_model` does.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.models._base import IMAGE, SEQUENCE, Body, Family, Head
from hpsearch.models._convnets import CNN_PARAMS, RESNET_PARAMS, build_cnn, build_resnet
from hpsearch.models._options import Param, choose, resolve
from hpsearch.models._recurrent import LSTM_FCN_PARAMS, LSTM_PARAMS, build_lstm, build_lstm_fcn

if TYPE_CHECKING:
    import keras

_FAMILIES = (
    Family(
        "resnet",
        "Residual CNN of Wang, Yan & Oates 2017 (arXiv:1611.06455), depth searched: "
        "ResNet-(3*blocks+1)",
        frozenset({SEQUENCE, IMAGE}),
        RESNET_PARAMS,
        build_resnet,
    ),
    Family(
        "cnn",
        "Plain CNN without shortcuts: Wang et al.'s FCN (arXiv:1611.06455), optional pooling",
        frozenset({SEQUENCE, IMAGE}),
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


def check_input_shape(family: Family, input_shape: tuple[int, ...], downsample: int) -> None:
    """Check that ``family`` reads inputs of ``input_shape``, downsampled by ``downsample``.

    Raises:
        ValueError: The shape is not positive integers, has a rank the family does not
            accept, or an axis shorter than ``downsample``.
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
        fitting = [f.name for f in FAMILIES.values() if len(input_shape) in f.ranks]
        raise ValueError(
            f"{where} accepts {family.accepts()}, got input_shape {input_shape}; "
            + (f"families for this rank: {', '.join(fitting)}" if fitting else "no family does")
        )
    spatial = input_shape[:-1]
    if min(spatial) < downsample:
        raise ValueError(
            f"{where}: downsample {downsample} exceeds the input's axis of "
            f"{min(spatial)} in input_shape {input_shape}; choose downsample <= {min(spatial)}"
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
            ``(height, width, channels)`` for ``resnet`` and ``cnn``.
        head: What the network outputs.
        regularisation: ``dropout``, ``l2``, ``noise_std`` (each optional, default 0).

    Returns:
        An uncompiled ``keras.Model`` named after its architecture (``resnet10``, ``cnn3``,
        ``lstm1``, ``bilstm2``, ``lstm_fcn``).

    Raises:
        ValueError: The family is unknown, a key is missing, unknown or invalid, or the family
            does not read inputs of this shape; the message names the key and lists the
            allowed ones.
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
        pool = layers.AveragePooling1D if body.dims == 1 else layers.AveragePooling2D
        x = pool(pool_size=downsample)(x)
    if regular["noise_std"] > 0:
        x = layers.GaussianNoise(regular["noise_std"])(x)
    x, model_name = family.build(x, options, body)
    if regular["dropout"] > 0:
        x = layers.Dropout(regular["dropout"])(x)
    outputs = layers.Dense(head.units, activation=head.activation, kernel_regularizer=regularizer)(
        x
    )
    return keras.Model(inputs, outputs, name=model_name)
