"""Recurrent families for sequences: stacked LSTMs and LSTM-FCN.

Every LSTM here keeps to the configuration for which Keras (TensorFlow backend) runs the fused
cuDNN kernel on a GPU: ``activation="tanh"``, ``recurrent_activation="sigmoid"``,
``recurrent_dropout=0``, ``unroll=False``, ``use_bias=True`` (and ``use_cudnn="auto"``, which
falls back to the generic kernel on a CPU). Any other value silently selects the generic
kernel, several times slower on a GPU, and the seed's LSTM was already its slowest model
(36224 s against ResNet-10's 10957 s). Regularisation therefore never enters the LSTM itself:
dropout is a separate layer after it; the L2 penalty (on ``kernel`` and ``recurrent_kernel``)
does not affect the kernel choice.

Recurrent families take sequences only. They step through every sample, so ``downsample``
(average pooling of the input) is what makes them feasible on a CPU: a 256-sample pulse at
``downsample=4`` is 64 steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.models._base import DOWNSAMPLE, Body
from hpsearch.models._convnets import FILTERS, KERNEL_SIZE, NORM, normalization
from hpsearch.models._options import Param
from hpsearch.models.resnet1d import block_kernels

if TYPE_CHECKING:
    import keras

#: The LSTM arguments that keep Keras on the fused cuDNN kernel on GPUs (see module docstring).
CUDNN_LSTM: dict[str, Any] = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
    "use_cudnn": "auto",
}

LSTM_PARAMS = (
    Param("units", "int", ge=1, doc="Cells of each LSTM layer (each direction)."),
    Param("layers", "int", ge=1, doc="Stacked LSTM layers; all but the last return sequences."),
    Param(
        "bidirectional",
        "bool",
        doc="Read each sequence both ways (Keras Bidirectional; outputs concatenated).",
    ),
    DOWNSAMPLE,
)

LSTM_FCN_PARAMS = (
    Param("lstm_units", "int", ge=1, doc="Cells of the LSTM branch; Karim et al. used 8-128."),
    FILTERS,
    KERNEL_SIZE,
    Param(
        "lstm_dropout",
        "float",
        default=0.8,
        ge=0.0,
        lt=1.0,
        doc="Dropout after the LSTM branch; 0.8 is Karim et al.'s.",
    ),
    Param(
        "dimension_shuffle",
        "bool",
        default=True,
        doc="The LSTM reads the transposed input (channels as steps, samples as features): "
        "Karim et al.'s choice, and one step per channel, so the branch is cheap.",
    ),
    NORM,
    DOWNSAMPLE,
)


def lstm_layer(units: int, *, return_sequences: bool, body: Body) -> keras.layers.Layer:
    """One LSTM layer in the cuDNN-compatible configuration, L2 on both kernels."""
    from keras import layers

    return layers.LSTM(
        units,
        return_sequences=return_sequences,
        kernel_regularizer=body.regularizer,
        recurrent_regularizer=body.regularizer,
        **CUDNN_LSTM,
    )


def build_lstm(x: Any, options: dict[str, Any], body: Body) -> tuple[Any, str]:
    """Stacked (optionally bidirectional) LSTMs; the last layer's final output is the feature.

    Returns:
        The features and the name ``lstm{layers}`` (``bilstm{layers}`` when bidirectional).
    """
    from keras import layers

    n_layers = options["layers"]
    for index in range(n_layers):
        layer = lstm_layer(options["units"], return_sequences=index < n_layers - 1, body=body)
        if options["bidirectional"]:
            layer = layers.Bidirectional(layer)
        x = layer(x)
    return x, f"{'bi' if options['bidirectional'] else ''}lstm{n_layers}"


def build_lstm_fcn(x: Any, options: dict[str, Any], body: Body) -> tuple[Any, str]:
    """LSTM-FCN (Karim, Majumdar, Darabi & Chen 2018, IEEE Access 6:1662, arXiv:1709.05206).

    Two branches read the same input and are concatenated before the head: an LSTM
    (``lstm_units`` cells, then dropout ``lstm_dropout``), by default on the dimension-shuffled
    input as in the paper, and Wang et al.'s FCN: three convolutions of ``filters * (1, 2, 1)``
    filters (Karim's 128/256/128) with kernels :func:`~hpsearch.models.resnet1d.block_kernels`
    (8/5/3), normalisation and ReLU, then global average pooling. The convolutions use He
    uniform initialisation, as Karim et al.'s code does.

    Returns:
        The concatenated features and the name ``lstm_fcn``.
    """
    from keras import layers

    recurrent = layers.Permute((2, 1))(x) if options["dimension_shuffle"] else x
    recurrent = lstm_layer(options["lstm_units"], return_sequences=False, body=body)(recurrent)
    if options["lstm_dropout"] > 0:
        recurrent = layers.Dropout(options["lstm_dropout"])(recurrent)
    filters = options["filters"]
    conv = x
    widths = (filters, 2 * filters, filters)
    for width, kernel in zip(widths, block_kernels(options["kernel_size"]), strict=True):
        conv = layers.Conv1D(
            width,
            kernel,
            padding="same",
            kernel_initializer="he_uniform",
            kernel_regularizer=body.regularizer,
        )(conv)
        conv = normalization(options["norm"], width)(conv)
        conv = layers.Activation("relu")(conv)
    conv = layers.GlobalAveragePooling1D()(conv)
    return layers.Concatenate()([recurrent, conv]), "lstm_fcn"
