"""One ``model.fit`` over all epochs (hpsearch.training) against a ``fit``/``evaluate`` per epoch.

The per-epoch loop that ``fit_and_report`` replaced called ``model.fit(epochs=1)`` and
``model.evaluate`` once per epoch, each building Keras's data adapter and ``tf.data`` pipeline
anew and reading two batches to infer their shapes. This script trains the same small ResNet on
the same simulated events both ways, alternating, and prints the wall time of each whole trial
(set-up of the data pipeline, every epoch, validation and the final test evaluation) and the
``train_seconds`` each reports:

    .venv/bin/python benchmarks/fit_loop.py --events 2000 --epochs 5 --repeats 3

Both loops use the same seed, reader order and normalisation, so they do the same arithmetic;
the first run of each is a warm-up (graph tracing, imports) and is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hpsearch.data import BatchReader, keras_dataset
from hpsearch.objective import DataRef, TrialContext, TrialFailed
from hpsearch.seeding import derive_seed


def per_epoch_loop(
    ctx: TrialContext,
    model: Any,
    train: BatchReader,
    val: BatchReader,
    test: BatchReader,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """The loop ``fit_and_report`` replaced, kept verbatim for comparison."""
    import math

    train_data = keras_dataset(train, transform=transform)
    val_data = keras_dataset(val, transform=transform)
    train_seconds = 0.0
    last: dict[str, Any] = {}
    for epoch in range(1, ctx.epochs + 1):
        started = time.perf_counter()
        fitted = model.fit(train_data, epochs=1, verbose=0, shuffle=False)
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        metrics: dict[str, Any] = {k: float(v[-1]) for k, v in fitted.history.items()}
        if not math.isfinite(metrics.get("loss", math.nan)):
            raise TrialFailed(f"training loss became {metrics.get('loss')} in epoch {epoch}")
        scores = model.evaluate(val_data, verbose=0, return_dict=True)
        metrics.update({f"val_{k}": float(v) for k, v in scores.items()})
        metrics.update(epoch=epoch, train_seconds=train_seconds, epoch_seconds=epoch_seconds)
        if epoch == ctx.epochs:
            test_data = keras_dataset(test, transform=transform)
            scores = model.evaluate(test_data, verbose=0, return_dict=True)
            metrics.update({f"test_{k}": float(v) for k, v in scores.items()})
            metrics.update(n_params=int(model.count_params()), complete=True)
        ctx.report(metrics)
        last = metrics
    return last


def run_once(loop: Callable[..., dict[str, Any]], data: DataRef, args: argparse.Namespace) -> Any:
    """Build, compile and train one model with ``loop``; return (wall seconds, last report)."""
    import keras

    from hpsearch.models import build_resnet1d

    keras.backend.clear_session()
    seed = derive_seed(args.seed, "trial", 0)
    keras.utils.set_random_seed(seed)
    info = data.info()
    pretrigger = int(info.attrs.get("pretrigger_samples", 8))
    train, val, test = data.readers(args.batch_size, seed=seed)
    scale = 1000.0

    def normalise(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x - x[:, :pretrigger].mean(axis=1, keepdims=True)) / scale
        return out.astype(np.float32)

    model = build_resnet1d(
        (info.event_shape[0], 1), info.n_classes, blocks=2, filters=8, kernel_size=5, downsample=2
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ctx = TrialContext(number=0, params={}, seed=seed, epochs=args.epochs, data=data)
    started = time.perf_counter()
    last = loop(ctx, model, train, val, test, transform=normalise)
    wall = time.perf_counter() - started
    for reader in (train, val, test):
        reader.close()
    return wall, last


def main() -> None:
    """Time both loops, alternating, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each loop")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from hpsearch.simulate.xgamma import simulate_to_file
    from hpsearch.training import fit_and_report

    loops = {"per-epoch fit+evaluate": per_epoch_loop, "one fit (fit_and_report)": fit_and_report}
    with tempfile.TemporaryDirectory(prefix="hpsearch-fit-loop-") as tmp:
        path = simulate_to_file(Path(tmp) / "x.h5", args.events, seed=args.seed, progress=False)
        from hpsearch.data import Layout, inspect_dataset, make_split

        info = inspect_dataset(path, Layout(), scan_finite=False)
        data = DataRef(info, Layout(), make_split(info.n_events, seed=1, block_size=32))
        walls: dict[str, list[float]] = {name: [] for name in loops}
        trained: dict[str, list[float]] = {name: [] for name in loops}
        accuracy: dict[str, float] = {}
        for repeat in range(args.repeats + 1):
            for name, loop in loops.items():
                wall, last = run_once(loop, data, args)
                if repeat == 0:
                    continue  # warm-up
                walls[name].append(wall)
                trained[name].append(last["train_seconds"])
                accuracy[name] = last["val_accuracy"]
    print(
        f"{args.events} events, {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.threads} thread(s), median of {args.repeats} runs after a warm-up:"
    )
    for name in loops:
        print(
            f"  {name:26s} wall {statistics.median(walls[name]):6.2f} s "
            f"(runs {', '.join(f'{w:.2f}' for w in walls[name])}), "
            f"train_seconds {statistics.median(trained[name]):6.2f} s, "
            f"last val_accuracy {accuracy[name]:.4f}"
        )


if __name__ == "__main__":
    main()
