"""The detector-grid family: waveform convolutions shared by every counter, then the grid.

Seed 002 (Telescope Array surface detectors) feeds an ``(N, N, T, 2)`` grid of two-layer
counter waveforms to a network. Its structure follows the detector: every counter's trace is
read by the same 1-D convolutions over time (kernels ``(1, 1, k)``: a counter is a counter
wherever it sits, so the weights are shared across the grid, as in Ivanov et al. 2021,
arXiv:2005.07117, who first summarise each station's trace), pooled over time into a feature
vector per counter, and the resulting ``(N, N, features)`` map is read by 2-D convolutions over
the grid, where the shower's footprint (lateral distribution, arrival-time gradient) lives.

    (N, N, T, C) -> [Conv3D (1, 1, k) over time, norm, ReLU, MaxPool over time (2)] x time_layers
                 -> mean and max over time -> (N, N, 2 * time_filters)
                 -> [Conv2D 3x3 (clipped to the grid), norm, ReLU] x grid_layers
                 -> global average pooling

Kept apart from ``cnn``'s 3-D convolutions, which mix time and space from the first layer: the
search can then tell which of the two structures the data prefers.
"""

from __future__ import annotations

from typing import Any

from hpsearch.models._base import DOWNSAMPLE, Body
from hpsearch.models._convnets import NORM, clip_kernel, normalization
from hpsearch.models._options import Param

GRID_PARAMS = (
    Param("time_layers", "int", default=2, ge=1, doc="Convolutions over each counter's trace."),
    Param("time_filters", "int", ge=1, doc="Filters of the trace convolutions."),
    Param("time_kernel", "int", default=5, ge=1, doc="Time bins of the trace kernels."),
    Param("grid_layers", "int", default=2, ge=0, doc="3x3 convolutions over the counter grid."),
    Param("grid_filters", "int", ge=1, doc="Filters of the grid convolutions."),
    NORM,
    DOWNSAMPLE,
)


def build_counter_grid(x: Any, options: dict[str, Any], body: Body) -> tuple[Any, str]:
    """Build the body on an ``(N, N, T, C)`` input (see the module docstring)."""
    from keras import layers, ops

    norm = options["norm"]
    for _ in range(options["time_layers"]):
        length = int(x.shape[3])
        x = layers.Conv3D(
            options["time_filters"],
            (1, 1, min(options["time_kernel"], length)),
            padding="same",
            kernel_regularizer=body.regularizer,
        )(x)
        x = normalization(norm, options["time_filters"])(x)
        x = layers.Activation("relu")(x)
        if length >= 2:
            x = layers.MaxPooling3D(pool_size=(1, 1, 2))(x)
    # Mean (the counter's integrated signal) and max (its peak) over what is left of time.
    x = layers.Concatenate()([ops.mean(x, axis=3), ops.max(x, axis=3)])
    for _ in range(options["grid_layers"]):
        spatial = (int(x.shape[1]), int(x.shape[2]))
        x = layers.Conv2D(
            options["grid_filters"],
            clip_kernel(3, spatial),
            padding="same",
            kernel_regularizer=body.regularizer,
        )(x)
        x = normalization(norm, options["grid_filters"])(x)
        x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return x, f"counter_grid{options['time_layers']}x{options['grid_layers']}"
