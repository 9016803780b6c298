"""X-ray vs gamma-ray events from SDD pulse shapes (seed study 000) with a 1-D ResNet.

One trial: read the study's split of the HDF5 file, build the ResNet the trial's parameters
describe, train it with Adam on an exponentially decaying learning rate
(``lr0 * decay_rate ** (step / decay_steps)``, the schedule without which the seed's validation
loss never converged), report validation metrics every epoch and test metrics at the end.

Parameters (``search_spaces/xgamma_resnet.yaml``): ``blocks``, ``filters``, ``kernel_size``,
``downsample``, ``norm``, ``dropout``, ``l2``, ``noise_std``, ``batch_size`` and the group
``optimizer`` with ``learning_rate``, ``decay_rate``, ``decay_steps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hpsearch.objective import TrialContext

if TYPE_CHECKING:
    from hpsearch.data import BatchReader

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


def amplitude_scale(reader: BatchReader, pretrigger: int) -> float:
    """Median pulse height of the first training batch: brings inputs to order one.

    One scale for all events (not one per event) keeps the pulse height, which carries the
    signal-to-noise ratio, visible to the network.
    """
    x, _ = reader.batch(0)
    baseline = x[:, :pretrigger].mean(axis=1, keepdims=True)
    heights = np.abs(x - baseline).max(axis=1)
    return float(max(np.median(heights), 1e-6))


def train(ctx: TrialContext) -> None:
    """Train and score one ResNet on the xgamma task, reporting every epoch."""
    import keras

    from hpsearch.models import build_resnet1d
    from hpsearch.training import fit_and_report

    params = ctx.params
    keras.utils.set_random_seed(ctx.seed)
    info = ctx.data.info()
    train_reader, val_reader, test_reader = ctx.data.readers(
        int(params["batch_size"]), seed=ctx.seed
    )
    n_samples = info.event_shape[0]
    pretrigger = int(info.attrs.get("pretrigger_samples", max(1, n_samples // 8)))
    scale = amplitude_scale(train_reader, pretrigger)

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
