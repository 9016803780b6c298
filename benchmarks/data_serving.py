"""Serving training batches: streamed from HDF5 against memory and plain numpy arrays.

    .venv/bin/python benchmarks/data_serving.py [--quick] [--skip-fit]

Writes its own chunked HDF5 files (256-sample float32 waveforms in chunks of 256 rows, int8
labels, like the x-gamma simulator's) into a temporary folder and prints:

(c) Peak RSS of a fresh process streaming one shuffled epoch over files of 1x, 4x and 8x the
    reader's buffer memory, against loading the same file into memory (run first, while this
    process is small: a child's ``ru_maxrss`` starts at its parent's RSS).
(b) Raw reader throughput in batches per second with no model: the reader before buffers
    (8 pieces per batch, two ``read_direct`` calls each), the streamed reader with and
    without its prefetch thread, and the in-memory reader. A loop that does nothing but ask
    for batches holds the GIL all the time, which the prefetch thread then has to win back
    after every HDF5 call; in training, the model's step releases it.
(a) Training steps per second of ``model.fit`` over one split's training part, for a tiny
    Conv1D and a small ResNet, fed by: plain numpy arrays (Keras's own array adapter), a
    :class:`~hpsearch.data.BatchReader` over a :class:`MemorySource`, and a reader streaming
    from the file (64 MiB of buffers, the default, and 4 MiB so that an epoch spans many
    buffers), with the ratios streamed / memory. The first epoch (graph tracing, first reads)
    is a warm-up; a feed's rate is its fastest later epoch over rounds that take turns, since
    other processes on a shared machine only ever slow an epoch down.

Files are freshly written, so they sit in the page cache: the numbers measure the CPU cost of
serving batches, not the disk.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py
import numpy as np
import numpy.typing as npt

from hpsearch.data import (
    BatchReader,
    H5Source,
    Layout,
    clear_memory_cache,
    inspect_dataset,
    iterate,
    make_split,
    memory_source,
)
from hpsearch.seeding import derive_rng

N_SAMPLES = 256
CHUNK_ROWS = 256
MiB = 2**20


def write_file(path: Path, n_events: int, seed: int = 0) -> Path:
    """Waveforms whose second half is raised for class 1, written in chunks of 256 rows."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        x = f.create_dataset(
            "waveforms",
            shape=(n_events, N_SAMPLES),
            dtype=np.float32,
            chunks=(min(CHUNK_ROWS, n_events), N_SAMPLES),
        )
        y = f.create_dataset("labels", shape=(n_events,), dtype=np.int8)
        step = 4096  # small steps keep this process (and so its children's ru_maxrss) small
        for start in range(0, n_events, step):
            stop = min(start + step, n_events)
            labels = rng.integers(0, 2, size=stop - start)
            waves = rng.normal(size=(stop - start, N_SAMPLES)).astype(np.float32)
            waves[:, N_SAMPLES // 2 :] += 0.5 * labels[:, None]
            x[start:stop] = waves
            y[start:stop] = labels
    return path


# --------------------------------------------------------------------------------------------
# (a) model.fit
# --------------------------------------------------------------------------------------------


def tiny_conv() -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((N_SAMPLES, 1)),
            keras.layers.Conv1D(8, 5, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def resnet() -> Any:
    from hpsearch.models import Head, build_model

    return build_model(
        {"name": "resnet", "blocks": 3, "filters": 32, "kernel_size": 8},
        input_shape=(N_SAMPLES, 1),
        head=Head("classification", 2),
    )


def fit_rates(
    build: Callable[[], Any], feed: str, path: Path, n_events: int, epochs: int
) -> tuple[float, float]:
    """Steps/s of the fastest epoch after the first, in one ``fit`` fed by ``feed``, and the
    least CPU time per step (all threads of this process: the model's, Keras's and the
    reader's) of those epochs, in ms.

    The fastest epoch, not the median: other processes on a shared machine only ever slow an
    epoch down, so the fastest is the best estimate of what the feed itself allows. CPU time
    per step varies less with such neighbours, and counts what reading costs on top of the
    model.
    """
    import keras

    from hpsearch.data import keras_dataset

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    info = inspect_dataset(path, scan_finite=False)
    train = make_split(info.n_events, seed=1).train
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seconds: list[float] = []
    cpu: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()
            self.cpu = time.process_time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.started)
            cpu.append(time.process_time() - self.cpu)

    if feed == "numpy arrays":
        memory = memory_source(info, Layout())
        reader = BatchReader(memory, train, 32, shuffle=False, seed=0, max_events=n_events)
        x = np.concatenate([b[0] for b in iterate(reader)])[..., np.newaxis]
        y = np.concatenate([b[1] for b in iterate(reader)])
        steps = -(-len(x) // 32)
        model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
    else:
        if feed == "memory reader":
            source: Any = memory_source(info, Layout())
            buffer = 64 * MiB
        else:
            source = H5Source(info, Layout())
            buffer = int(feed.split("(")[1].split()[0]) * MiB
        reader = BatchReader(
            source, train, 32, shuffle=True, seed=0, max_events=n_events, buffer_bytes=buffer
        )
        steps = len(reader)
        model.fit(
            keras_dataset(reader), epochs=epochs, shuffle=False, verbose=0, callbacks=[Timer()]
        )
        reader.close()
    return steps / min(seconds[1:]), 1e3 * min(cpu[1:]) / steps


def section_fit(folder: Path, quick: bool) -> None:
    n_file = 40_000 if quick else 80_000
    rounds = 1 if quick else 2
    path = write_file(folder / "fit.h5", n_file)
    print(
        f"\n(a) model.fit, batch 32: steps/s of the fastest epoch after the first, and below "
        f"it CPU ms per step (least of those epochs), over {rounds} round(s) taking turns; "
        f"{n_file} events of {N_SAMPLES} float32 in the file"
    )
    models = [
        ("tiny Conv1D", tiny_conv, 8_000 if quick else 16_000, 4),
        ("ResNet 3x32 k8", resnet, 768 if quick else 1_024, 3),
    ]
    feeds = ["numpy arrays", "memory reader", "streamed (64 MiB)", "streamed (4 MiB)"]
    header = f"  {'model':15s} {'events':>6s} " + " ".join(f"{f:>17s}" for f in feeds)
    print(header + "   streamed/memory (64, 4 MiB)")
    for name, build, n_events, epochs in models:
        rates = dict.fromkeys(feeds, 0.0)
        cpu = dict.fromkeys(feeds, float("inf"))
        for _ in range(rounds):
            for feed in feeds:
                rate, ms = fit_rates(build, feed, path, n_events, epochs)
                rates[feed] = max(rates[feed], rate)
                cpu[feed] = min(cpu[feed], ms)
        cells = " ".join(f"{rates[f]:17.1f}" for f in feeds)
        ratios = ", ".join(f"{rates[f] / rates['memory reader']:.2f}x" for f in feeds[2:])
        print(f"  {name:15s} {n_events:6d} {cells}   {ratios} steps/s")
        cells = " ".join(f"{cpu[f]:17.2f}" for f in feeds)
        ratios = ", ".join(f"{cpu['memory reader'] / cpu[f]:.2f}x" for f in feeds[2:])
        print(f"  {'  CPU ms/step':15s} {'':6s} {cells}   {ratios} (memory's CPU / streamed's)")


# --------------------------------------------------------------------------------------------
# (b) raw reader throughput
# --------------------------------------------------------------------------------------------


class OldStyleReader:
    """The reader before buffers, reduced to its reads: per batch, pieces of ``batch / 8``
    events from shuffled places, each read with two ``read_direct`` calls (x and y)."""

    def __init__(self, path: Path, blocks: npt.NDArray[np.int64], batch_size: int) -> None:
        piece = -(-batch_size // 8)
        starts, lengths = [], []
        for a, b in blocks.tolist():
            for s in range(a, b, piece):
                starts.append(s)
                lengths.append(min(piece, b - s))
        order = derive_rng(0, "reader", "epoch", 0).permutation(len(starts))
        self.start = np.asarray(starts)[order]
        self.length = np.asarray(lengths)[order]
        self.end = np.cumsum(self.length)
        self.batch_size = batch_size
        self.file = h5py.File(path, "r", rdcc_nbytes=32 * MiB)
        self.x, self.y = self.file["waveforms"], self.file["labels"]

    def __len__(self) -> int:
        return -(-int(self.end[-1]) // self.batch_size)

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo = index * self.batch_size
        hi = min(lo + self.batch_size, int(self.end[-1]))
        first = int(np.searchsorted(self.end, lo, side="right"))
        last = int(np.searchsorted(self.end - self.length, hi, side="left"))
        x = np.empty((hi - lo, N_SAMPLES), np.float32)
        y = np.empty(hi - lo, np.int64)
        row = 0
        for k in range(first, last):
            begin = int(self.end[k] - self.length[k])
            a = int(self.start[k]) + max(lo - begin, 0)
            b = int(self.start[k]) + min(hi - begin, int(self.length[k]))
            self.x.read_direct(x, np.s_[a:b], np.s_[row : row + b - a])
            self.y.read_direct(y, np.s_[a:b], np.s_[row : row + b - a])
            row += b - a
        if not np.isfinite(x).all():
            raise ValueError("non-finite input")
        mix = derive_rng(0, "reader", "batch", 0, index).permutation(hi - lo)
        return x[mix], y[mix]


def batches_per_second(reader: Any, limit: int | None = None) -> float:
    n = len(reader) if limit is None else min(limit, len(reader))
    started = time.perf_counter()
    for i in range(n):
        reader.batch(i)
    return n / (time.perf_counter() - started)


def section_raw(folder: Path, quick: bool) -> None:
    n_file = 50_000 if quick else 150_000
    path = write_file(folder / "raw.h5", n_file)
    info = inspect_dataset(path, scan_finite=False)
    train = make_split(n_file, seed=1).train
    n_train = int((train[:, 1] - train[:, 0]).sum())
    print(
        f"\n(b) raw reader, batches/s (batch 32, one shuffled epoch of {n_train} events, no model)"
    )
    old = OldStyleReader(path, train, 32)
    rates = {"before buffers (8 pieces/batch)": batches_per_second(old, 2000 if quick else 4000)}
    old.file.close()
    for label, prefetch in (("streamed, prefetch thread", True), ("streamed, no thread", False)):
        source = H5Source(info, Layout())
        reader = BatchReader(source, train, 32, shuffle=True, seed=0, prefetch=prefetch)
        reader.batch(0)
        reader.set_epoch(1)
        rates[label] = batches_per_second(reader)
        reader.close()
    memory = BatchReader(memory_source(info, Layout()), train, 32, shuffle=True, seed=0)
    rates["memory reader"] = batches_per_second(memory)
    base = rates["before buffers (8 pieces/batch)"]
    for label, rate in rates.items():
        print(
            f"  {label:34s} {rate:10.0f}  ({rate / base:5.1f}x before, "
            f"{32 * rate / 1e3:7.0f}k events/s)"
        )


# --------------------------------------------------------------------------------------------
# (c) peak RSS
# --------------------------------------------------------------------------------------------

_CHILD = r"""
import resource, sys
from hpsearch.data import (
    BatchReader, H5Source, Layout, inspect_dataset, iterate, make_split, memory_source
)

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux

def hwm():
    # This process's own peak (ru_maxrss also counts the parent's RSS at the fork).
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")

path, mode, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
info = inspect_dataset(path, scan_finite=False)
split = make_split(info.n_events, seed=0)
before, before_hwm = rss(), hwm()
source = H5Source(info, Layout()) if mode == "stream" else memory_source(info, Layout())
reader = BatchReader(source, split.train, 32, shuffle=True, seed=0, buffer_bytes=cap)
n = sum(len(y) for _, y in iterate(reader))
reader.close()
print(before, rss(), before_hwm, hwm(), n)
"""


def section_rss(folder: Path, quick: bool) -> None:
    cap = (4 if quick else 16) * MiB
    print(
        f"\n(c) peak RSS of a fresh process reading one shuffled epoch (training part, 70% of "
        f"the file), buffer_bytes = {cap // MiB} MiB; ru_maxrss, and VmHWM (the process's own)"
    )
    print(
        f"  {'file':>10s} {'x cap':>6s} {'mode':>7s} {'before':>9s} {'peak':>9s} {'growth':>8s}"
        f" | {'VmHWM before':>12s} {'peak':>9s} {'growth':>8s}"
    )
    for factor in (1, 4, 8):
        n_events = factor * cap // (4 * N_SAMPLES)
        path = write_file(folder / f"rss{factor}.h5", n_events, seed=factor)
        size = path.stat().st_size / MiB
        for mode in ("stream", "memory"):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), mode, str(cap)],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout.split()
            before, peak, own_before, own_peak = (float(v) for v in out[:4])
            print(
                f"  {size:6.0f} MiB {factor:5d}x {mode:>7s} {before:5.0f} MiB {peak:5.0f} MiB "
                f"{peak - before:+5.0f} MiB | {own_before:8.0f} MiB {own_peak:5.0f} MiB "
                f"{own_peak - own_before:+5.0f} MiB"
            )
        path.unlink()


def main() -> None:
    """Run the three sections and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer epochs")
    parser.add_argument(
        "--skip-fit", action="store_true", help="leave out (a), which imports TensorFlow"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{os.cpu_count()} CPU cores; h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}")
    with tempfile.TemporaryDirectory(prefix="hpsearch-serving-") as tmp:
        folder = Path(tmp)
        # Peak RSS first, while this process is small: a child's ru_maxrss starts from its
        # parent's RSS at the fork (Linux keeps it across exec).
        section_rss(folder, args.quick)
        section_raw(folder, args.quick)
        clear_memory_cache()
        if not args.skip_fit:
            section_fit(folder, args.quick)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
