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
