"""Convolutional families for sequences, images and volumes: ResNet and the plain CNN (FCN-like).

Both follow Wang, Yan & Oates (2017, "Time Series Classification from Scratch with Deep Neural
Networks: A Strong Baseline", arXiv:1611.06455): convolutions with ``same`` padding,
normalisation and ReLU, global average pooling, then the head. The same code builds ``Conv1D``
networks for ``(length, channels)`` sequences, ``Conv2D`` ones for ``(height, width,
channels)`` images (the count maps of later tasks) and ``Conv3D`` ones for ``(x, y, time,
channels)`` volumes (a surface-detector grid of waveforms), a kernel of size ``k`` meaning
``k x k`` on images and ``k x k x k`` on volumes.

A kernel is clipped, axis by axis, to the length that axis has where the convolution reads it
(after ``downsample`` and any pooling): a 7-wide detector grid read with ``kernel_size=8`` gets
``7 x 7 x 8`` kernels. With ``same`` padding a longer kernel would only add weights that always
multiply padding zeros, so clipping changes no receptive field, keeps the parameter count
honest, and lets one ``kernel_size`` range serve grids of 6-9 detectors and 128 time bins alike.
Sequences and images are clipped the same way, which changes nothing unless the kernel is
longer than the (downsampled) input.

Normalisation defaults to group normalisation, not Wang's batch normalisation, for the reason
measured on the xgamma pulses and given in :mod:`hpsearch.models.resnet1d` (batch statistics of
pulses with a 1/f baseline make a batch-normalised network score near chance in inference mode
for its first epochs, exactly the epochs ASHA judges on); ``norm: batch`` is Wang's original.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.models._base import DOWNSAMPLE, Body
from hpsearch.models._options import Param
from hpsearch.models.resnet1d import GROUPS, block_kernels

if TYPE_CHECKING:
    import keras

FILTERS = Param(
    "filters", "int", ge=1, doc="Filters of the first convolution; Wang's 64 (ResNet), 128 (FCN)."
)
KERNEL_SIZE = Param(
    "kernel_size",
    "int",
    ge=1,
    doc="Kernel of the first convolution; later ones follow Wang's 8/5/3 scaled "
    "(resnet1d.block_kernels).",
)
NORM = Param(
    "norm",
    "choice",
    default="group",
    choices=("group", "batch", "none"),
    doc="Normalisation after each convolution; group by default (see resnet1d), batch is Wang's.",
)

RESNET_PARAMS = (
    Param(
        "blocks",
        "int",
        ge=1,
        doc="Residual blocks of 3 convolutions: ResNet-(3*blocks+1); the seed's ResNet-10/16 "
        "are 3 and 5, Wang's ResNet is 3.",
    ),
    FILTERS,
    KERNEL_SIZE,
    NORM,
    DOWNSAMPLE,
)

CNN_PARAMS = (
    Param(
        "layers",
        "int",
        default=3,
        ge=1,
        doc="Convolution layers; 3 is Wang's FCN and the seed's plain CNN.",
    ),
    FILTERS,
    KERNEL_SIZE,
    Param(
        "pooling",
        "choice",
        choices=("max", "average", "none"),
        doc="Pooling (size 2) between convolutions; none is Wang's FCN, which keeps the length.",
    ),
    NORM,
    DOWNSAMPLE,
)


def normalization(norm: str, width: int) -> keras.layers.Layer:
    """The normalisation layer after a convolution of ``width`` filters.

    Group normalisation uses :data:`~hpsearch.models.resnet1d.GROUPS` groups when they divide
    the width, else one group (layer normalisation over the channels).
    """
    from keras import layers

    if norm == "batch":
        return layers.BatchNormalization()
    if norm == "group":
        return layers.GroupNormalization(groups=GROUPS if width % GROUPS == 0 else 1)
    return layers.Identity()


def _layers_for(dims: int) -> tuple[Any, Any, Any, Any]:
    """Convolution, global average pooling, max and average pooling for 1, 2 or 3 spatial axes."""
    from keras import layers

    if dims == 1:
        return (
            layers.Conv1D,
            layers.GlobalAveragePooling1D,
            layers.MaxPooling1D,
            layers.AveragePooling1D,
        )
    if dims == 2:
        return (
            layers.Conv2D,
            layers.GlobalAveragePooling2D,
            layers.MaxPooling2D,
            layers.AveragePooling2D,
        )
    return (
        layers.Conv3D,
        layers.GlobalAveragePooling3D,
        layers.MaxPooling3D,
        layers.AveragePooling3D,
    )


def _spatial(x: Any) -> tuple[int, ...]:
    """The static spatial axes of a symbolic tensor ``(batch, *spatial, channels)``."""
    return tuple(int(size) for size in x.shape[1:-1])


def clip_kernel(kernel: int, spatial: tuple[int, ...]) -> int | tuple[int, ...]:
    """A ``kernel``-wide convolution's kernel on axes of length ``spatial``, clipped per axis.

    Returns ``kernel`` itself when every axis is at least that long (the layer's config stays
    what it was before clipping existed), else one size per axis: ``min(kernel, axis)``. Why
    clip: see the module docstring.
    """
    if all(kernel <= size for size in spatial):
        return kernel
    return tuple(min(kernel, size) for size in spatial)


def _conv(conv: Any, width: int, kernel: int, x: Any, body: Body) -> Any:
    """Apply a ``same``-padded convolution of ``width`` filters, its kernel clipped to ``x``."""
    size = clip_kernel(kernel, _spatial(x))
    return conv(width, size, padding="same", kernel_regularizer=body.regularizer)(x)


def build_resnet(x: Any, options: dict[str, Any], body: Body) -> tuple[Any, str]:
    """Wang et al.'s ResNet body: residual blocks of three convolutions, 1x1 shortcuts.

    The first block has ``filters`` filters, later ones twice as many (Wang: 64/128/128); each
    block's kernels are :func:`~hpsearch.models.resnet1d.block_kernels` (8/5/3 at 8).
    :func:`~hpsearch.models.build_resnet1d` is this body with a softmax head, layer for layer.

    Returns:
        The globally pooled features and the name ``resnet{3*blocks+1}``.
    """
    from keras import layers

    conv, global_pool, _, _ = _layers_for(body.dims)
    blocks, filters, norm = options["blocks"], options["filters"], options["norm"]
    for index in range(blocks):
        width = filters if index == 0 else 2 * filters
        shortcut = _conv(conv, width, 1, x, body)
        shortcut = normalization(norm, width)(shortcut)
        y = x
        for position, kernel in enumerate(block_kernels(options["kernel_size"])):
            y = _conv(conv, width, kernel, y, body)
            y = normalization(norm, width)(y)
            if position < 2:
                y = layers.Activation("relu")(y)
        x = layers.Activation("relu")(layers.Add()([shortcut, y]))
    return global_pool()(x), f"resnet{3 * blocks + 1}"


def cnn_widths(filters: int, n_layers: int) -> list[int]:
    """Filters of each layer: Wang's FCN 128/256/128 is ``filters * (1, 2, 1)``.

    First and last layers have ``filters``, those between twice as many.
    """
    return [filters if i in (0, n_layers - 1) else 2 * filters for i in range(n_layers)]


def cnn_kernels(kernel_size: int, n_layers: int) -> list[int]:
    """Kernels of each layer: Wang's 8/5/3 scaled to ``kernel_size``, then 3 for any further."""
    return [*block_kernels(kernel_size), *[3] * max(0, n_layers - 3)][:n_layers]


def build_cnn(x: Any, options: dict[str, Any], body: Body) -> tuple[Any, str]:
    """The plain CNN: Wang et al.'s FCN (conv, norm, ReLU; no shortcuts), optionally pooled.

    With ``layers=3`` and ``pooling=none`` this is Wang's FCN at ``filters`` width; the seed's
    plain 3-layer CNN is the same depth. Pooling of size 2 (``same`` padding, so a short
    sequence never pools to nothing) goes between convolutions, not after the last, which global
    average pooling follows. It halves every spatial axis, volumes' included, except an axis
    already down to one sample, which it leaves alone.

    Returns:
        The globally pooled features and the name ``cnn{layers}``.
    """
    from keras import layers

    conv, global_pool, max_pool, average_pool = _layers_for(body.dims)
    n_layers, pooling = options["layers"], options["pooling"]
    widths = cnn_widths(options["filters"], n_layers)
    kernels = cnn_kernels(options["kernel_size"], n_layers)
    for index, (width, kernel) in enumerate(zip(widths, kernels, strict=True)):
        x = _conv(conv, width, kernel, x, body)
        x = normalization(options["norm"], width)(x)
        x = layers.Activation("relu")(x)
        if pooling != "none" and index < n_layers - 1:
            pool = max_pool if pooling == "max" else average_pool
            sizes = tuple(min(2, size) for size in _spatial(x))
            x = pool(pool_size=sizes, padding="same")(x)
    return global_pool()(x), f"cnn{n_layers}"
