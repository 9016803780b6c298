"""X-ray vs gamma-ray events from SDD pulse shapes (seed study 000), any model family.

One trial: read the study's split of the HDF5 file, build the model the trial's parameters
describe, train it (by default with Adam on an exponentially decaying learning rate,
``lr0 * decay_rate ** (step / decay_steps)``, the schedule without which the seed's validation
loss never converged), report validation metrics every epoch and test metrics at the end.
Inputs are baseline-subtracted and divided by one scale, the training split's median pulse
height, computed once per study by :func:`input_stats`.

Parameters come in one of two formats:

* Flat (``search_spaces/xgamma_resnet.yaml``): ``blocks``, ``filters``, ``kernel_size``,
  ``downsample``, ``norm``, ``dropout``, ``l2``, ``noise_std``, ``batch_size`` and the group
  ``optimizer`` with ``learning_rate``, ``decay_rate``, ``decay_steps``: the ResNet above, on
  Adam with that decay.
* Families (recognised by a ``model`` key): ``model`` (a family of
  :data:`hpsearch.models.FAMILIES` with its parameters, e.g. ``{"name": "lstm", "units": 32,
  "layers": 1, "bidirectional": False, "downsample": 4}``), ``regularisation`` (``dropout``,
  ``l2``, ``noise_std``), ``optimizer`` (``{"name": "adam", "learning_rate": ...}``),
  ``lr_schedule`` (e.g. ``{"name": "exponential", "decay_rate": ..., "decay_steps": ...}``;
  constant if absent) and ``batch_size``. Seed 000 compared ResNet-10/16, LSTM-FCN, a plain CNN
  and an LSTM on these pulses; this format lets one study search across them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.objective import TrialContext

if TYPE_CHECKING:
    import keras

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
    from hpsearch.data import BatchReader, H5Source, iterate

    info = data.info()
    pretrigger = int(info.attrs.get("pretrigger_samples", max(1, info.event_shape[0] // 8)))
    source = H5Source(info, data.layout)
    train_blocks = data.split().train
    with BatchReader(
        source, train_blocks, 1024, shuffle=False, seed=0, max_events=STATS_EVENTS
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


def build_family_trial(
    params: Mapping[str, Any], *, n_samples: int, n_classes: int, steps_per_epoch: int, epochs: int
) -> tuple[keras.Model, keras.optimizers.Optimizer, list[keras.callbacks.Callback]]:
    """The model, optimizer and schedule callbacks of a trial in the families format.

    Args:
        params: The trial's parameters, with ``model`` and ``optimizer`` and optionally
            ``regularisation`` and ``lr_schedule``.
        n_samples: Samples per pulse (the model reads ``(n_samples, 1)``).
        n_classes: Classes of the softmax head.
        steps_per_epoch: Training batches per epoch (for epoch-based schedules).
        epochs: The trial's epoch budget (``cosine`` decays over all of it).

    Raises:
        ValueError: A group is missing, or :func:`~hpsearch.models.build_model` or
            :func:`~hpsearch.models.build_optimizer` refused the parameters.
    """
    from hpsearch.models import Head, build_model, build_optimizer

    if "optimizer" not in params:
        raise ValueError(
            "parameters with a `model` group need an `optimizer` group too "
            f"(e.g. {{name: adam, learning_rate: 0.003}}), got keys {sorted(params)}"
        )
    model = build_model(
        params["model"],
        input_shape=(n_samples, 1),
        head=Head("classification", n_classes),
        regularisation=params.get("regularisation"),
    )
    optimizer, callbacks = build_optimizer(
        params["optimizer"],
        params.get("lr_schedule"),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
    )
    return model, optimizer, callbacks


def train(ctx: TrialContext) -> None:
    """Train and score one model on the xgamma task, reporting every epoch.

    The flat format builds the ResNet of :func:`~hpsearch.models.build_resnet1d` on Adam with
    exponential decay; the families format (a ``model`` key) whichever family, optimizer and
    schedule the trial chose (see the module docstring).
    """
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

    try:
        callbacks: list[keras.callbacks.Callback] = []
        if "model" in params:
            model, optimizer, callbacks = build_family_trial(
                params,
                n_samples=n_samples,
                n_classes=info.n_classes,
                steps_per_epoch=len(train_reader),
                epochs=ctx.epochs,
            )
        else:
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
            optimizer = keras.optimizers.Adam(learning_rate=schedule)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit_and_report(
            ctx,
            model,
            train_reader,
            val_reader,
            test_reader,
            transform=normalise,
            callbacks=callbacks,
        )
    finally:
        for reader in (train_reader, val_reader, test_reader):
            reader.close()
