"""X-ray vs gamma-ray events from SDD pulse shapes (seed study 000) with a 1-D ResNet.

One trial: read the study's split of the HDF5 file, build the ResNet the trial's parameters
describe, train it with Adam on an exponentially decaying learning rate
(``lr0 * decay_rate ** (step / decay_steps)``, the schedule without which the seed's validation
loss never converged), report validation metrics every epoch and test metrics at the end.
Inputs are baseline-subtracted and divided by one scale, the training split's median pulse
height, computed once per study by :func:`input_stats`.

Parameters (``search_spaces/xgamma_resnet.yaml``): ``blocks``, ``filters``, ``kernel_size``,
``downsample``, ``norm``, ``dropout``, ``l2``, ``noise_std``, ``batch_size`` and the group
``optimizer`` with ``learning_rate``, ``decay_rate``, ``decay_steps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.objective import TrialContext

if TYPE_CHECKING:
    from hpsearch.objective import DataRef

METRICS = (
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "epoch_seconds",
    "n_params",
)

#: Training events the input statistics are taken from, at most (see :func:`input_stats`).
STATS_EVENTS = 4096


def pulse_heights(x: np.ndarray, pretrigger: int) -> np.ndarray:
    """Height of each event's pulse above its own baseline (mean of the pretrigger samples)."""
    baseline = x[:, :pretrigger].mean(axis=1, keepdims=True)
    heights: np.ndarray = np.abs(x - baseline).max(axis=1)
    return heights


def input_stats(data: DataRef) -> dict[str, Any]:
    """The input scale every trial of a study shares: the training split's median pulse height.

    One scale for all events (not one per event) keeps the pulse height, which carries the
    signal-to-noise ratio, visible to the network; the same scale for all trials keeps them
    comparable (a scale taken per trial, from one shuffled batch, varied by 1.2-1.34x with the
    trial's seed and batch size, confounded with the searched parameters).

    Read from the first :data:`STATS_EVENTS` training events in split order: the split lists
    its blocks in an order drawn from the split seed, so these are a fixed random sample of the
    whole file that depends on the split alone, never on a trial, and a 100 GB file costs no
    more than a small one. Files with fewer training events use them all.

    Returns:
        ``amplitude_scale`` (median baseline-subtracted pulse height, in the file's units),
        ``pretrigger_samples`` (the samples the baseline is the mean of) and ``n_events`` (how
        many training events the median is over).
    """
    from hpsearch.data import BatchReader, Layout, iterate

    info = data.info()
    pretrigger = int(info.attrs.get("pretrigger_samples", max(1, info.event_shape[0] // 8)))
    layout = Layout(data.x_key, data.y_key)
    train_blocks = data.split().train
    with BatchReader(
        data.path, layout, train_blocks, 1024, shuffle=False, seed=0, max_events=STATS_EVENTS
    ) as reader:
        heights = np.concatenate([pulse_heights(x, pretrigger) for x, _ in iterate(reader)])
    return {
        "amplitude_scale": float(max(np.median(heights), 1e-6)),
        "pretrigger_samples": pretrigger,
        "n_events": len(heights),
    }


def scaling(ctx: TrialContext) -> tuple[int, float]:
    """The trial's ``(pretrigger_samples, amplitude_scale)``, from the study's input statistics.

    Computed here from the training split only when the trial got none (``train`` called
    directly, outside a study run); the result is the same either way.

    Raises:
        ValueError: ``ctx.input_stats`` lacks a key or holds a non-positive scale.
    """
    stats: Mapping[str, Any] = ctx.input_stats or input_stats(ctx.data)
    missing = {"amplitude_scale", "pretrigger_samples"} - set(stats)
    if missing:
        raise ValueError(
            f"input_stats lacks {sorted(missing)}, got keys {sorted(stats)}; pass the dict "
            "xgamma's input_stats(data) returns, or an empty one to compute it"
        )
    scale = float(stats["amplitude_scale"])
    if not scale > 0:
        raise ValueError(f"input_stats['amplitude_scale'] must be > 0, got {scale}")
    return int(stats["pretrigger_samples"]), scale


def train(ctx: TrialContext) -> None:
    """Train and score one ResNet on the xgamma task, reporting every epoch."""
    import keras

    from hpsearch.models import build_resnet1d
    from hpsearch.training import fit_and_report

    params = ctx.params
    keras.utils.set_random_seed(ctx.seed)
    info = ctx.data.info()
    pretrigger, scale = scaling(ctx)
    train_reader, val_reader, test_reader = ctx.data.readers(
        int(params["batch_size"]), seed=ctx.seed
    )
    n_samples = info.event_shape[0]

    def normalise(x: np.ndarray) -> np.ndarray:
        baseline = x[:, :pretrigger].mean(axis=1, keepdims=True)
        out: np.ndarray = ((x - baseline) / scale).astype(np.float32)
        return out

    model = build_resnet1d(
        (n_samples, 1),
        info.n_classes,
        blocks=int(params["blocks"]),
        filters=int(params["filters"]),
        kernel_size=int(params["kernel_size"]),
        dropout=float(params["dropout"]),
        l2=float(params["l2"]),
        noise_std=float(params["noise_std"]),
        downsample=int(params["downsample"]),
        norm=params.get("norm", "group"),
    )
    opt = params["optimizer"]
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(opt["learning_rate"]),
        decay_steps=int(opt["decay_steps"]),
        decay_rate=float(opt["decay_rate"]),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    try:
        fit_and_report(ctx, model, train_reader, val_reader, test_reader, transform=normalise)
    finally:
        for reader in (train_reader, val_reader, test_reader):
            reader.close()
