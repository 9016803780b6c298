"""HDF5 files for the data tests, written with h5py directly (no dependency on the simulator).

Row ``i`` of the inputs starts with the value ``i``, so a batch can be traced back to its events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpsearch.errors import DataError, InputError

N_SAMPLES = 8


def rows(n: int, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Inputs whose row i is i, i + 0.01, i + 0.02, ...: the first value names the event."""
    return (np.arange(n, dtype=np.float32)[:, None] + np.arange(n_samples) / 100).astype(np.float32)


def write(
    path: Path,
    n: int = 300,
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
    x_key: str = "waveforms",
    y_key: str = "labels",
    chunks: tuple[int, ...] | None = None,
) -> Path:
    x = rows(n) if x is None else x
    y = (np.arange(len(x)) % 3).astype(np.int8) if y is None else y
    if attrs is None:
        attrs = {"task": "test", "seed": 1, "class_names": json.dumps(["a", "b", "c"])}
    with h5py.File(path, "w") as f:
        f.create_dataset(x_key, data=x, chunks=chunks)
        f.create_dataset(y_key, data=y)
        f.create_dataset("truth/energy", data=np.ones(len(y)))
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def check_error(err: DataError, path: Path, *texts: str) -> None:
    """The error is a DataError, exits with 2 and names the file, the dataset and a fix."""
    assert isinstance(err, DataError)
    assert isinstance(err, InputError)
    assert err.exit_code == 2
    message = str(err)
    assert str(path.resolve()) in message
    for text in texts:
        assert text in message, f"{text!r} not in {message!r}"
    assert err.fix
    assert "fix:" in message


def events_of(blocks: np.ndarray) -> np.ndarray:
    if len(blocks) == 0:
        return np.zeros(0, np.int64)
    events: np.ndarray = np.concatenate([np.arange(a, b) for a, b in blocks])
    return events


def write_shards(
    folder: Path,
    sizes: list[int],
    *,
    datasets: dict[str, np.ndarray] | None = None,
    attrs: dict[str, Any] | None = None,
    y: np.ndarray | None = None,
) -> list[Path]:
    """Files of one data set, ``shard0.h5``, ... holding ``sizes[k]`` events each.

    Rows and labels are those of one file of ``sum(sizes)`` events cut in order, so a row's
    first value is its global event index. ``datasets`` (global per-event arrays) are cut the
    same way into every file.
    """
    total = sum(sizes)
    x = rows(total)
    y = (np.arange(total) % 3).astype(np.int8) if y is None else y
    paths: list[Path] = []
    offset = 0
    for k, n in enumerate(sizes):
        path = write(
            folder / f"shard{k}.h5",
            x=x[offset : offset + n],
            y=y[offset : offset + n],
            attrs=attrs,
        )
        add_datasets(path, {key: v[offset : offset + n] for key, v in (datasets or {}).items()})
        paths.append(path)
        offset += n
    return paths


def add_datasets(path: Path, datasets: dict[str, np.ndarray]) -> Path:
    """Add datasets (e.g. split labels or groups) to an existing file."""
    with h5py.File(path, "a") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


def write_chunked_shards(
    directory: Path,
    sizes: list[int],
    *,
    n_samples: int = N_SAMPLES,
    y: np.ndarray | None = None,
    chunks: tuple[int, ...] | None = None,
    name: str = "shard",
) -> list[Path]:
    """Like :func:`write_shards`, with chunked inputs of ``n_samples`` and any targets.

    Row ``i`` of the whole set (counted across files) starts with i; ``y`` holds the targets
    of the whole set (default: ``i % 3`` as int8), cut like the rows.
    """
    x = rows(sum(sizes), n_samples)
    y = (np.arange(len(x)) % 3).astype(np.int8) if y is None else y
    paths = []
    start = 0
    for index, size in enumerate(sizes):
        path = directory / f"{name}{index}.h5"
        part = slice(start, start + size)
        paths.append(write(path, x=x[part], y=y[part], attrs={}, chunks=chunks))
        start += size
    return paths
