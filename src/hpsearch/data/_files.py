"""Opening and checking HDF5 data files: what a study's data is, before any trial reads it.

:func:`inspect_dataset` validates the layout of a file once, in the driver, before any trial
starts, and raises :class:`~hpsearch.errors.DataError` (exit code 2) naming the file, the
dataset and the fix. Scans over the data (labels, non-finite values) read bounded chunks, so the
check itself never needs more than ~64 MiB whatever the file's size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from hpsearch.errors import DataError

__all__ = ["DatasetInfo", "Layout", "Shard", "TargetKind", "inspect_dataset"]

IntArray = npt.NDArray[np.int64]

# Upper bound on the bytes a validation scan reads in one go; bounds its memory for any file size.
_SCAN_BYTES = 64 * 2**20
# HDF5 chunk cache per open reader. The 1 MiB default is smaller than a typical chunk of long
# waveforms, and a chunk that does not fit the cache is decompressed again for every batch.
_CHUNK_CACHE_BYTES = 32 * 2**20
# How many datasets a "dataset missing" message lists before it cuts the list short.
_MAX_LISTED = 20


@dataclass(frozen=True)
class Layout:
    """Names of the datasets that hold the events and their labels.

    Our simulator writes ``/waveforms`` and ``/labels``; a user's file may use other names,
    which the study declares here instead of rewriting a file that may be 100 GB.

    Attributes:
        x_key: Dataset of the inputs, shape ``(n_events, *event_shape)``, floating point.
        y_key: Dataset of the class labels, shape ``(n_events,)``, integer or bool.
    """

    x_key: str = "waveforms"
    y_key: str = "labels"


#: What the targets are: class indices, or float values to regress.
TargetKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Shard:
    """One file of a data set that spans several (shards, or separate train/val/test files).

    Attributes:
        path: Absolute path of the file.
        n_events: Its number of events. Event ``i`` of the data set is event ``i - offset`` of
            the shard whose range holds it, shards counted in order.
    """

    path: Path
    n_events: int


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`inspect_dataset` learned about a data set that passed every check.

    Attributes:
        path: Absolute path of the (first) file, so that workers with another working directory
            (Ray moves trials into their own directories) still find it.
        n_events: Number of events (rows of x and y), over all shards.
        event_shape: Shape of one event, e.g. ``(n_samples,)`` or ``(n, n, t, 2)``.
        x_dtype: Numpy name of the stored input dtype, e.g. ``"float32"``.
        y_dtype: Numpy name of the stored target dtype, e.g. ``"int8"``.
        n_classes: Classification: the number of classes (``len(class_names)`` when names are
            given, else max label + 1). Regression: 0.
        attrs: The (first) file's root attributes as plain Python values (str, int, float,
            list).
        target: Whether targets are class indices or values to regress.
        target_shape: Shape of one event's target: ``()`` for a class index or a single value,
            ``(k,)`` for k regression targets.
        class_names: Names of the classes, by label value, when the study or the file gives
            them.
        target_names: Regression: one name per target (from the study, the file's
            ``target_names`` attribute, or ``target_0``, ...). Classification: empty.
        shards: Every file in order, with its event count; one entry for a single file. Empty
            only in a DatasetInfo made by hand, which then means the single file ``path``.
    """

    path: Path
    n_events: int
    event_shape: tuple[int, ...]
    x_dtype: str
    y_dtype: str
    n_classes: int
    attrs: dict[str, Any] = field(default_factory=dict)
    target: TargetKind = "classification"
    target_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] = ()
    shards: tuple[Shard, ...] = ()

    @property
    def files(self) -> tuple[Shard, ...]:
        """The shards, or the single file ``path`` for a DatasetInfo made without them."""
        return self.shards or (Shard(self.path, self.n_events),)

    @property
    def n_targets(self) -> int:
        """Regression targets per event (1 for a single value); 1 for classification."""
        return math.prod(self.target_shape) if self.target_shape else 1

    @property
    def event_bytes(self) -> int:
        """Bytes one event takes in memory as served: float32 inputs, int64 or float32 targets."""
        y_bytes = 8 if self.target == "classification" else 4 * self.n_targets
        return 4 * math.prod(self.event_shape) + y_bytes


# --------------------------------------------------------------------------------------------
# Opening and checking a file
# --------------------------------------------------------------------------------------------


def _open_file(
    path: Path,
    layout: Layout,
    *,
    simulate_hint: str | None = None,
    **kwargs: Any,
) -> h5py.File:
    """Open ``path`` read-only, or raise a DataError that says why not and what to do."""
    wanted = f"datasets {layout.x_key!r} and {layout.y_key!r}"
    if not path.exists():
        fix = simulate_hint or "set data.path in the study file to an existing HDF5 file"
        raise DataError(path, "", f"file not found (expected an HDF5 file with {wanted})", fix)
    if not path.is_file():
        raise DataError(
            path,
            "",
            f"is a directory, not an HDF5 file with {wanted}",
            "set data.path in the study file to the HDF5 file itself",
        )
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise DataError(path, "", f"cannot be read: {err}", "check the file's permissions") from err
    if not is_hdf5:
        raise DataError(
            path,
            "",
            f"is not an HDF5 file (expected one with {wanted})",
            "point data.path at an HDF5 file; convert other formats with h5py first",
        )
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as err:
        raise DataError(
            path,
            "",
            f"cannot be opened as HDF5: {err}",
            "check that the file is complete (not still being written) and readable",
        ) from err


def _list_datasets(file: h5py.File) -> list[str]:
    """Names (with shape and dtype) of every dataset in ``file``, for error messages."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"{name!r} {obj.dtype} {obj.shape}")

    file.visititems(visit)
    return found


def _get_dataset(file: h5py.File, path: Path, key: str, role: str) -> h5py.Dataset:
    """Return dataset ``key``, or raise a DataError listing the datasets the file does have."""
    obj = file.get(key)
    if isinstance(obj, h5py.Dataset):
        return obj
    names = _list_datasets(file)
    if names:
        listed = ", ".join(names[:_MAX_LISTED])
        if len(names) > _MAX_LISTED:
            listed += f", ... ({len(names) - _MAX_LISTED} more)"
        have = f"the file has: {listed}"
    else:
        have = "the file has no datasets at all"
    what = "is a group, not a dataset" if obj is not None else "not found"
    field_name = "x_key" if role == "inputs" else "y_key"
    raise DataError(
        path,
        key,
        f"dataset of the {role} {what}; {have}",
        f"set data.{field_name} in the study file to the dataset that holds the {role}",
    )


def _check_structure(path: Path, layout: Layout, x: h5py.Dataset, y: h5py.Dataset) -> None:
    """Check dtypes, dimensions and lengths: metadata only, nothing is read."""
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            path,
            layout.x_key,
            f"inputs have dtype {x.dtype}, expected floating point",
            "write the inputs as float32 (e.g. `x.astype('float32')`) when creating the file",
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(
            path,
            layout.y_key,
            f"labels have dtype {y.dtype}, expected integer class indices",
            "write the labels as integers 0..n_classes-1 (e.g. int8) when creating the file",
        )
    if x.ndim < 2 or 0 in x.shape[1:]:
        raise DataError(
            path,
            layout.x_key,
            f"inputs have shape {x.shape}, expected (n_events, n_samples, ...)",
            "store one row per event, e.g. shape (n_events, n_samples)",
        )
    if y.ndim != 1:
        raise DataError(
            path,
            layout.y_key,
            f"labels have shape {y.shape}, expected (n_events,)",
            "store one class index per event (for one-hot labels, store their argmax)",
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(
            path,
            f"{layout.x_key}, {layout.y_key}",
            f"{layout.x_key!r} has {x.shape[0]} events but {layout.y_key!r} has {y.shape[0]}",
            "write exactly one label per event",
        )


def _plain(value: Any) -> Any:
    """Turn an HDF5 attribute into a plain Python value (for JSON reports and comparisons)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, h5py.Empty):
        return None
    return value


def _class_names(path: Path, attrs: dict[str, Any]) -> list[str] | None:
    """The ``class_names`` root attribute (a JSON list, or an array of strings), if present."""
    if "class_names" not in attrs:
        return None
    raw = attrs["class_names"]
    names: Any = raw
    if isinstance(raw, str):
        try:
            names = json.loads(raw)
        except json.JSONDecodeError:
            names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(
            path,
            "attrs['class_names']",
            f"root attribute class_names is {raw!r}, expected a JSON list of strings",
            'write it as json.dumps(["name0", "name1", ...]), one name per label value',
        )
    return names


def _rows_per_read(dataset: h5py.Dataset) -> int:
    """Rows per scan read: as many as fit ``_SCAN_BYTES``, aligned to whole HDF5 chunks."""
    row_bytes = dataset.dtype.itemsize * math.prod(dataset.shape[1:])
    rows = max(1, _SCAN_BYTES // max(1, row_bytes))
    chunks = dataset.chunks
    if chunks is not None:
        # Whole chunks only, so that no chunk is decompressed twice.
        rows = max(chunks[0], rows // chunks[0] * chunks[0])
    return int(rows)


def _scan_labels(path: Path, key: str, y: h5py.Dataset, class_names: list[str] | None) -> int:
    """Check every label lies in ``0..n_classes-1`` and return ``n_classes``."""
    step = _rows_per_read(y)
    limit = len(class_names) if class_names is not None else None
    highest = -1
    for start in range(0, y.shape[0], step):
        labels = np.asarray(y[start : start + step]).astype(np.int64, copy=False)
        bad = labels < 0 if limit is None else (labels < 0) | (labels >= limit)
        if bad.any():
            first = int(np.argmax(bad))
            event = start + first
            if limit is None:
                expected = "labels must be >= 0"
            else:
                expected = f"expected 0..{limit - 1} (class_names has {limit} entries)"
            raise DataError(
                path,
                key,
                f"label {int(labels[first])} at event {event}; {expected}",
                "write labels as class indices 0..n_classes-1, matching the class_names attribute",
            )
        highest = max(highest, int(labels.max()))
    return limit if limit is not None else highest + 1


def _scan_finite(path: Path, key: str, x: h5py.Dataset) -> None:
    """Check every value of ``x`` is finite, reading at most ``_SCAN_BYTES`` at a time."""
    step = _rows_per_read(x)
    for start in range(0, x.shape[0], step):
        values = np.asarray(x[start : start + step])
        if not np.isfinite(values).all():
            rows = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
            raise _non_finite_error(path, key, start + int(np.argmin(rows)))


def _non_finite_error(path: Path, key: str, event: int) -> DataError:
    return DataError(
        path,
        key,
        f"non-finite value (NaN or inf) in event {event}",
        "fix or drop that event when writing the file (e.g. with np.isfinite(x).all(axis=1))",
    )


def inspect_dataset(
    path: str | Path,
    layout: Layout = Layout(),  # frozen, so one shared default is safe
    *,
    simulate_hint: str | None = None,
    min_events: int = 3,
    scan_finite: bool = True,
) -> DatasetInfo:
    """Check a data file before any trial uses it, and describe it.

    Every problem is a :class:`~hpsearch.errors.DataError` naming the file, the dataset and the
    fix, so a bad file stops the study at once with exit code 2 instead of failing in every
    trial of a search. Nothing is loaded whole: the label and finite-value scans read bounded
    chunks.

    Args:
        path: The HDF5 file.
        layout: Names of the input and label datasets.
        simulate_hint: Fix to show when the file is missing, e.g. ``"run `hpsearch simulate
            xgamma --out PATH`"`` for studies whose data our simulator makes.
        min_events: Fewest events accepted (the default 3 gives each split part one event).
        scan_finite: Scan all inputs for NaN/inf. On a 100 GB file the scan reads 100 GB, so it
            can be turned off; :class:`BatchReader` still checks every batch it reads.

    Returns:
        A :class:`DatasetInfo` with the absolute path, sizes, dtypes, n_classes and attributes.

    Raises:
        DataError: The file is missing or not HDF5, a dataset is missing or has the wrong
            dtype or shape, x and y differ in length, there are too few events, a label is out
            of range, or (with ``scan_finite``) an input is NaN or inf.
    """
    resolved = Path(path).expanduser().resolve()
    with _open_file(resolved, layout, simulate_hint=simulate_hint) as file:
        x = _get_dataset(file, resolved, layout.x_key, "inputs")
        y = _get_dataset(file, resolved, layout.y_key, "labels")
        _check_structure(resolved, layout, x, y)
        n_events = int(x.shape[0])
        if n_events < min_events:
            raise DataError(
                resolved,
                layout.x_key,
                f"only {n_events} events, at least {min_events} needed",
                "use a file with more events (one per train/val/test part at the very least)",
            )
        attrs = {str(k): _plain(v) for k, v in file.attrs.items()}
        class_names = _class_names(resolved, attrs)
        n_classes = _scan_labels(resolved, layout.y_key, y, class_names)
        if scan_finite:
            _scan_finite(resolved, layout.x_key, x)
        return DatasetInfo(
            path=resolved,
            n_events=n_events,
            event_shape=tuple(int(d) for d in x.shape[1:]),
            x_dtype=str(x.dtype),
            y_dtype=str(y.dtype),
            n_classes=n_classes,
            attrs=attrs,
        )
