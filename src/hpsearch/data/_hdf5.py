"""Training data read from HDF5 files one batch at a time, never a whole dataset at once.

Files can be far larger than memory (100 GB in one use case), and every trial of a search runs
in its own Ray worker process, so this module is built around three rules:

* **Check early, read lazily.** :func:`inspect_dataset` validates the layout of a file once, in
  the driver, before any trial starts, and raises :class:`~hpsearch.errors.DataError` (exit code
  2) naming the file, the dataset and the fix. Scans over the data (labels, non-finite values)
  read bounded chunks, so the check itself never needs more than ~64 MiB.
* **Slices, not fancy indexing.** :func:`make_split` cuts the events into contiguous blocks, and
  :class:`BatchReader` reads every part of a batch as a contiguous slice: HDF5 reads a slice
  in one call but reads a list of random indices point by point.
* **Picklable readers.** A reader opens its file on first use and drops the handle when
  pickled, so it can be built in the driver and shipped to a worker process.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from hpsearch.errors import DataError
from hpsearch.seeding import derive_rng

__all__ = [
    "BatchReader",
    "DatasetInfo",
    "Layout",
    "Split",
    "inspect_dataset",
    "iterate",
    "make_split",
]

IntArray = npt.NDArray[np.int64]

# Upper bound on the bytes a validation scan reads in one go; bounds its memory for any file size.
_SCAN_BYTES = 64 * 2**20
# HDF5 chunk cache per open reader. The 1 MiB default is smaller than a typical chunk of long
# waveforms, and a chunk that does not fit the cache is decompressed again for every batch.
_CHUNK_CACHE_BYTES = 32 * 2**20
# How many datasets a "dataset missing" message lists before it cuts the list short.
_MAX_LISTED = 20

_PARTS = ("train", "val", "test")


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


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`inspect_dataset` learned about a file that passed every check.

    Attributes:
        path: Absolute path of the file, so that workers with another working directory (Ray
            moves trials into their own directories) still find it.
        n_events: Number of events (rows of x and y).
        event_shape: Shape of one event, e.g. ``(n_samples,)``.
        x_dtype: Numpy name of the stored input dtype, e.g. ``"float32"``.
        y_dtype: Numpy name of the stored label dtype, e.g. ``"int8"``.
        n_classes: ``len(class_names)`` if the file has that attribute, else max label + 1.
        attrs: The file's root attributes as plain Python values (str, int, float, list).
    """

    path: Path
    n_events: int
    event_shape: tuple[int, ...]
    x_dtype: str
    y_dtype: str
    n_classes: int
    attrs: dict[str, Any] = field(default_factory=dict)


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


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Split:
    """Train, validation and test events as ``[start, stop)`` blocks of event indices.

    Each part is an int64 array of shape ``(k, 2)``. Blocks are listed in the seeded random
    order they were drawn in, not in file order, so "the first blocks of a part" (what
    ``BatchReader(max_events=...)`` takes) is a random sample spread over the whole file, not
    its beginning. Sort by start for file order.

    Attributes:
        train: Blocks of the training part.
        val: Blocks of the validation part.
        test: Blocks of the test part.
    """

    train: IntArray
    val: IntArray
    test: IntArray

    def part(self, name: str) -> IntArray:
        """The blocks of part ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in _PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {', '.join(_PARTS)}")
        blocks: IntArray = getattr(self, name)
        return blocks

    def n_events(self, part: str) -> int:
        """Number of events in part ``part`` (``"train"``, ``"val"`` or ``"test"``)."""
        blocks = self.part(part)
        return int((blocks[:, 1] - blocks[:, 0]).sum())


def make_split(
    n_events: int,
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    block_size: int = 32,
) -> Split:
    """Split ``n_events`` events into train, validation and test blocks.

    The events are cut into contiguous blocks of ``block_size`` so that reading a block from
    disk is one slice; the blocks are shuffled (by ``seed``) so that every part samples the
    whole file, even one sorted by class or by time. The shuffled sequence is then cut at the
    exact event counts, so a part's size is its fraction of ``n_events`` rounded to the nearest
    event (one block may be shared by two parts, each getting a contiguous piece of it).

    Deterministic in all four arguments: the same study always gets the same split. The seed
    is used through :func:`hpsearch.seeding.derive_rng` under the name ``"split"``, so passing
    the study's master seed does not correlate the split with other random streams.

    Args:
        n_events: Number of events in the file.
        seed: Seed of the split.
        fractions: Fractions of train, validation and test; each > 0, summing to 1.
        block_size: Events per block; larger blocks read faster but mix less.

    Returns:
        The :class:`Split`; its parts are disjoint and together cover every event once.

    Raises:
        ValueError: Fractions that are not three positive numbers summing to 1, a block_size
            below 1, or too few events to give every part at least one.
    """
    if len(fractions) != 3:
        raise ValueError(
            f"split fractions must be three numbers (train, val, test), got {fractions!r}"
        )
    if not all(math.isfinite(f) and f > 0 for f in fractions):
        raise ValueError(
            f"split fractions must each be > 0, got {fractions!r}; give every part some events"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"split fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g})"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if n_events < 3:
        raise ValueError(f"need at least 3 events to split into train/val/test, got {n_events}")

    n_val = max(1, round(fractions[1] * n_events))
    n_test = max(1, round(fractions[2] * n_events))
    n_train = n_events - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"{n_events} events are too few for fractions {fractions!r}: the training part "
            "would be empty"
        )

    starts = np.arange(0, n_events, block_size, dtype=np.int64)
    stops = np.minimum(starts + block_size, n_events)
    order = derive_rng(seed, "split").permutation(len(starts))
    starts, stops = starts[order], stops[order]
    # Position of every block in the shuffled sequence of events.
    ends = np.cumsum(stops - starts)
    begins = ends - (stops - starts)

    parts: list[IntArray] = []
    for lo, hi in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n_events)):
        # Blocks overlapping [lo, hi) of the shuffled sequence, clipped to it.
        take = (ends > lo) & (begins < hi)
        a = starts[take] + np.maximum(lo - begins[take], 0)
        b = starts[take] + np.minimum(hi - begins[take], stops[take] - starts[take])
        blocks = np.stack([a, b], axis=1).astype(np.int64)
        blocks.setflags(write=False)
        parts.append(blocks)
    return Split(train=parts[0], val=parts[1], test=parts[2])


# --------------------------------------------------------------------------------------------
# Reading batches
# --------------------------------------------------------------------------------------------


def _cut(blocks: IntArray, length: int) -> tuple[IntArray, IntArray]:
    """Cut blocks into pieces of at most ``length`` events; return (starts, lengths)."""
    sizes = blocks[:, 1] - blocks[:, 0]
    counts = -(-sizes // length)  # ceil
    owner = np.repeat(np.arange(len(blocks)), counts)
    first = np.cumsum(counts) - counts
    offset = (np.arange(int(counts.sum())) - first[owner]) * length
    starts = blocks[owner, 0] + offset
    lengths = np.minimum(length, sizes[owner] - offset)
    return starts.astype(np.int64), lengths.astype(np.int64)


def _coalesce(blocks: IntArray) -> IntArray:
    """Sort blocks by start and merge touching ones, for the fewest reads in file order."""
    blocks = blocks[np.argsort(blocks[:, 0], kind="stable")]
    new_run = np.ones(len(blocks), dtype=bool)
    new_run[1:] = blocks[1:, 0] != blocks[:-1, 1]
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], len(blocks)) - 1
    return np.stack([blocks[run_starts, 0], blocks[run_ends, 1]], axis=1).astype(np.int64)


class BatchReader:
    """Batches of one split, read from disk one batch at a time.

    Only the batch being read is ever in memory (plus the HDF5 chunk cache, 32 MiB at most),
    whatever the size of the file: the reader holds block boundaries, never event data.

    With ``shuffle=True`` the split's blocks are cut into pieces of about
    ``batch_size / pieces_per_batch`` events, the pieces are shuffled once per epoch, and each
    batch takes the next ``batch_size`` events of that sequence. A batch therefore mixes about
    ``pieces_per_batch`` places of the file (so a file sorted by class still gives mixed
    batches) while each piece is still read as one contiguous slice; the events inside a batch
    are shuffled too. The order depends only on ``seed``, the epoch number and the batch index,
    so a batch can be read in any order (Keras may shuffle batch indices) and any process
    reads the same batch.

    With ``shuffle=False`` the batches run through the split in file order and cover every
    event exactly once, for evaluation.

    The file is opened on the first read, not in ``__init__``, and the handle is dropped when
    the reader is pickled or used in a forked child, so a reader made in the driver works in a
    Ray worker.

    Args:
        path: The HDF5 file (made absolute here, before the reader travels to a worker whose
            working directory differs).
        layout: Names of the input and label datasets.
        blocks: The part of a :class:`Split` to read, int array ``(k, 2)`` of ``[start, stop)``.
        batch_size: Events per batch (the last batch may be smaller unless ``drop_remainder``).
        shuffle: Shuffle for training (True) or read in file order for evaluation (False).
        seed: Seed of the shuffle, used through :func:`hpsearch.seeding.derive_rng`.
        max_events: Read at most this many events: the first blocks of ``blocks``, which in a
            :class:`Split` are a random sample of the file. For quick, cheap trials.
        drop_remainder: Leave out the last, smaller batch (with shuffle, a different set of
            events is left out each epoch).
        pieces_per_batch: With shuffle, how many separate places of the file a batch draws
            from. More mixes better but costs more reads per batch.

    Attributes:
        events_read: Events read from disk so far (for tests and benchmarks).
    """

    def __init__(
        self,
        path: str | Path,
        layout: Layout,
        blocks: npt.ArrayLike,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        max_events: int | None = None,
        drop_remainder: bool = False,
        pieces_per_batch: int = 8,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be >= 1 or None, got {max_events}")
        if pieces_per_batch < 1:
            raise ValueError(f"pieces_per_batch must be >= 1, got {pieces_per_batch}")
        array = np.asarray(blocks)
        if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"blocks must be an integer array of shape (k, 2), got {array.dtype} {array.shape}"
            )
        array = array.astype(np.int64)
        if len(array) == 0 or (array[:, 0] < 0).any() or (array[:, 1] <= array[:, 0]).any():
            raise ValueError("blocks must be non-empty [start, stop) ranges with 0 <= start < stop")
        ordered = array[np.argsort(array[:, 0], kind="stable")]
        if (ordered[1:, 0] < ordered[:-1, 1]).any():
            raise ValueError("blocks overlap; every event must appear in at most one block")
        if max_events is not None:
            array = _take_first(array, max_events)

        self.path = Path(path).expanduser().resolve()
        self.layout = layout
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.events_read = 0
        self._n_events = int((array[:, 1] - array[:, 0]).sum())
        self._last_needed = int(array[:, 1].max())
        n_batches = self._n_events // batch_size
        if not drop_remainder:
            n_batches = -(-self._n_events // batch_size)
        if n_batches == 0:
            raise ValueError(
                f"the split has {self._n_events} events, fewer than one batch of {batch_size} "
                "with drop_remainder=True; lower the batch size"
            )
        self._n_batches = n_batches
        if shuffle:
            piece = -(-batch_size // pieces_per_batch)
            self._piece_start, self._piece_len = _cut(array, piece)
        else:
            merged = _coalesce(array)
            self._piece_start = merged[:, 0].copy()
            self._piece_len = merged[:, 1] - merged[:, 0]
        self._epoch = 0
        self._order_start: IntArray = self._piece_start
        self._order_len: IntArray = self._piece_len
        self._order_end: IntArray = np.cumsum(self._piece_len)
        self._arrange()
        self._file: h5py.File | None = None
        self._x: h5py.Dataset | None = None
        self._y: h5py.Dataset | None = None
        self._pid: int | None = None

    # -- size and epochs ----------------------------------------------------------------------

    @property
    def n_events(self) -> int:
        """Events in the split (after ``max_events``), whether or not batches drop some."""
        return self._n_events

    @property
    def epoch(self) -> int:
        """Number of the current epoch, from 0; advanced by :meth:`on_epoch_end`."""
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch."""
        return self._n_batches

    def on_epoch_end(self) -> None:
        """Start the next epoch; with shuffle, in a new order derived from seed and epoch."""
        self.set_epoch(self._epoch + 1)

    def set_epoch(self, epoch: int) -> None:
        """Jump to epoch ``epoch``, e.g. when a trial resumes from a checkpoint.

        The order of an epoch depends only on the seed and the epoch number, so a resumed
        trial sees the same batches it would have seen without the interruption.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch = epoch
        self._arrange()

    def _arrange(self) -> None:
        """Lay out the pieces in this epoch's order (file order without shuffle)."""
        if not self.shuffle:
            return
        order = derive_rng(self.seed, "reader", "epoch", self._epoch).permutation(
            len(self._piece_start)
        )
        self._order_start = self._piece_start[order]
        self._order_len = self._piece_len[order]
        self._order_end = np.cumsum(self._order_len)

    # -- reading ------------------------------------------------------------------------------

    def _datasets(self) -> tuple[h5py.Dataset, h5py.Dataset]:
        """The open x and y datasets, opening the file on first use (and in a new process)."""
        if self._x is None or self._y is None or self._pid != os.getpid():
            # A handle inherited through fork is not safe to use; drop it without closing.
            self._file = self._x = self._y = None
            file = _open_file(self.path, self.layout, rdcc_nbytes=_CHUNK_CACHE_BYTES)
            try:
                x = _get_dataset(file, self.path, self.layout.x_key, "inputs")
                y = _get_dataset(file, self.path, self.layout.y_key, "labels")
                _check_structure(self.path, self.layout, x, y)
                if self._last_needed > x.shape[0]:
                    raise DataError(
                        self.path,
                        self.layout.x_key,
                        f"the split reaches event {self._last_needed - 1} but the file has only "
                        f"{x.shape[0]} events",
                        "the file changed since the split was made; make the split again from "
                        "this file",
                    )
            except BaseException:
                file.close()
                raise
            self._file, self._x, self._y, self._pid = file, x, y, os.getpid()
        return self._x, self._y

    def _slices(self, index: int) -> IntArray:
        """File slices ``(m, 2)`` that make up batch ``index``, sorted by start."""
        lo = index * self.batch_size
        hi = min(lo + self.batch_size, self._n_events)
        ends = self._order_end
        first = int(np.searchsorted(ends, lo, side="right"))
        last = int(np.searchsorted(ends - self._order_len, hi, side="left"))
        begin = ends[first:last] - self._order_len[first:last]
        start = self._order_start[first:last]
        a = start + np.maximum(lo - begin, 0)
        b = start + np.minimum(hi - begin, self._order_len[first:last])
        return _coalesce(np.stack([a, b], axis=1))

    def batch(self, index: int) -> tuple[npt.NDArray[np.float32], IntArray]:
        """Read batch ``index`` of the current epoch from disk.

        Args:
            index: Batch number, ``0 <= index < len(self)`` (negative counts from the end).

        Returns:
            ``(x, y)``: inputs as float32 ``(batch, *event_shape)``, labels as int64
            ``(batch,)``.

        Raises:
            IndexError: ``index`` out of range (ends plain iteration over the reader).
            DataError: The file or a dataset is missing or malformed, or the batch holds a
                NaN or inf (the message names the event's index in the file).
        """
        if index < 0:
            index += self._n_batches
        if not 0 <= index < self._n_batches:
            raise IndexError(f"batch {index} out of range for {self._n_batches} batches")
        x_data, y_data = self._datasets()
        slices = self._slices(index)
        sizes = slices[:, 1] - slices[:, 0]
        total = int(sizes.sum())
        x = np.empty((total, *x_data.shape[1:]), dtype=np.float32)
        y = np.empty(total, dtype=np.int64)
        ends = np.cumsum(sizes)
        for (a, b), end, size in zip(slices.tolist(), ends.tolist(), sizes.tolist(), strict=True):
            # read_direct converts the dtype inside HDF5, without a temporary copy.
            rows = np.s_[end - size : end]
            x_data.read_direct(x, np.s_[a:b], rows)
            y_data.read_direct(y, np.s_[a:b], rows)
        self.events_read += total
        if not np.isfinite(x).all():
            # Map the first bad row back to its index in the file.
            row = int(np.argmin(np.isfinite(x.reshape(total, -1)).all(axis=1)))
            piece = int(np.searchsorted(ends, row, side="right"))
            event = int(slices[piece, 0] + row - (ends[piece] - sizes[piece]))
            raise _non_finite_error(self.path, self.layout.x_key, event)
        if self.shuffle:
            mix = derive_rng(self.seed, "reader", "batch", self._epoch, index).permutation(total)
            x, y = x[mix], y[mix]
        return x, y

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; a later read opens it again."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._x = self._y = None
        self._pid = None

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the HDF5 handles, which cannot cross processes."""
        state = self.__dict__.copy()
        state.update(_file=None, _x=None, _y=None, _pid=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"BatchReader({str(self.path)!r}, {self.layout!r}, n_events={self._n_events}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, epoch={self._epoch})"
        )


def _take_first(blocks: IntArray, max_events: int) -> IntArray:
    """The first blocks holding ``max_events`` events, the last one cut short if needed."""
    ends = np.cumsum(blocks[:, 1] - blocks[:, 0])
    if ends[-1] <= max_events:
        return blocks
    keep = int(np.searchsorted(ends, max_events, side="left")) + 1
    taken = blocks[:keep].copy()
    taken[-1, 1] -= int(ends[keep - 1]) - max_events
    return taken


def iterate(reader: BatchReader) -> Iterator[tuple[npt.NDArray[np.float32], IntArray]]:
    """Yield every batch of the reader's current epoch, for plain numpy evaluation loops.

    The epoch is not advanced; call ``reader.on_epoch_end()`` for that.
    """
    for index in range(len(reader)):
        yield reader.batch(index)
