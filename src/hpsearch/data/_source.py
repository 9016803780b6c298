"""Event sources: where a reader's events come from, the HDF5 files or memory.

A source serves contiguous ranges ``[start, stop)`` of events in one global index space (event
``i`` counts across the shards of a data set in order) as float32 inputs and targets: int64
class labels, or float32 ``(n, *target_shape)`` values to regress. Two sources serve the same
events identically, so a :class:`~hpsearch.data.BatchReader` gives the same batches from
either:

* :class:`H5Source` reads the files, memory bounded whatever their size (100 GB in one use
  case). Its reads are low-level ``H5Dread`` calls on row ranges, with the dtype converted
  inside HDF5 and ranges close together read as one span: h5py's high-level ``read_direct``
  costs ~35 µs a call in Python, the low-level call ~10 µs, and a buffer of a training part
  (blocks of 32 events) would otherwise take a thousand of them.
* :class:`MemorySource` serves numpy arrays. :func:`memory_source` loads a data set once per
  process and keeps it, because Ray Tune runs many trials in one worker process and loading a
  few GB per trial would cost more than training on it.
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from h5py import h5d, h5p, h5s

from hpsearch.data._files import (
    DatasetInfo,
    Layout,
    TargetKind,
    _check_structure,
    _get_dataset,
    _non_finite_error,
    _open_file,
)
from hpsearch.errors import DataError

__all__ = [
    "EventSource",
    "H5Source",
    "MemorySource",
    "clear_memory_cache",
    "load_into_memory",
    "memory_source",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

# HDF5 chunk cache of the inputs of an open shard: two rows of chunks, within these bounds.
# Readers read chunk-aligned windows in file order, so a chunk is only ever needed again by
# the next range of the same window; a larger cache would only hold memory (per open file).
_MIN_CHUNK_CACHE = 2**20
_MAX_CHUNK_CACHE = 64 * 2**20
# Open shards kept per source (least recently used closed first). Opening one costs ~0.2 ms.
_MAX_OPEN_FILES = 8
# Bytes of inputs checked for NaN/inf at a time (bounds the temporary bool array).
_CHECK_BYTES = 4 * 2**20
# Largest span read in one call to serve several ranges close together (see _covers).
_COVER_BYTES = 8 * 2**20
# Bytes read per call by load_into_memory (rounded to whole chunks).
_LOAD_BYTES = 64 * 2**20


def _y_dtype(target: TargetKind) -> np.dtype[Any]:
    """The served target dtype: int64 class indices, or float32 values to regress."""
    return np.dtype(np.int64) if target == "classification" else np.dtype(np.float32)


class EventSource(ABC):
    """Events ``0..n_events-1`` of a data set, served by contiguous ranges.

    Attributes:
        n_events: Events in the data set, over all its files.
        event_shape: Shape of one event's inputs.
        target: ``"classification"`` (int64 targets) or ``"regression"`` (float32 targets).
        target_shape: Shape of one event's target: ``()`` or ``(k,)``.
        bounds: int64 ``(n_files + 1,)``: file ``f`` holds events ``bounds[f]:bounds[f+1]``.
            Readers cut their windows at these bounds, so a window never spans two files.
    """

    def __init__(
        self,
        n_events: int,
        event_shape: tuple[int, ...],
        target: TargetKind,
        target_shape: tuple[int, ...],
        bounds: npt.ArrayLike,
    ) -> None:
        if target not in ("classification", "regression"):
            raise ValueError(f"target must be 'classification' or 'regression', got {target!r}")
        self.n_events = int(n_events)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.target: TargetKind = target
        self.target_shape = tuple(int(d) for d in target_shape)
        edges = np.asarray(bounds, dtype=np.int64).reshape(-1)
        if (
            len(edges) < 2
            or edges[0] != 0
            or edges[-1] != self.n_events
            or (np.diff(edges) < 0).any()
        ):
            raise ValueError(
                f"bounds must rise from 0 to n_events={self.n_events}, got {edges.tolist()}"
            )
        edges.setflags(write=False)
        self.bounds: IntArray = edges

    @property
    def event_bytes(self) -> int:
        """Bytes one event takes as served: float32 inputs plus its int64 or float32 target."""
        x = 4 * math.prod(self.event_shape)
        return x + _y_dtype(self.target).itemsize * math.prod(self.target_shape)

    @property
    def y_dtype(self) -> np.dtype[Any]:
        """The dtype of the served targets: int64 for classification, float32 for regression."""
        return _y_dtype(self.target)

    @property
    @abstractmethod
    def chunk_rows(self) -> int:
        """Events per HDF5 chunk of the inputs (1 when not chunked), to align reads to.

        Readers cut their windows at multiples of this, so that a window decompresses each
        chunk it touches once. It is part of what fixes a reader's batches: two sources serve
        the same batches only if they report the same ``chunk_rows`` and ``bounds``.
        """

    def empty(self, n: int) -> tuple[FloatArray, npt.NDArray[Any]]:
        """Uninitialised ``(x, y)`` arrays for ``n`` events, in the served dtypes."""
        x = np.empty((n, *self.event_shape), dtype=np.float32)
        y = np.empty((n, *self.target_shape), dtype=self.y_dtype)
        return x, y

    @abstractmethod
    def read_into(
        self, ranges: npt.ArrayLike, x: FloatArray, y: npt.NDArray[Any], row: int = 0
    ) -> int:
        """Read ranges of events into consecutive rows of ``x`` and ``y``, from ``row`` on.

        Args:
            ranges: int ``(k, 2)`` of ``[start, stop)``, in the order they are to be written.
            x: C-contiguous float32 ``(m, *event_shape)``.
            y: C-contiguous ``(m, *target_shape)`` of :attr:`y_dtype`.
            row: First row of ``x`` and ``y`` to write.

        Returns:
            The number of events written.

        Raises:
            DataError: A file is missing or malformed, or an input is NaN or inf (the message
                names the file and the event's index in it).
            ValueError: Ranges out of bounds, or arrays of the wrong shape or dtype.
        """

    def read(self, start: int, stop: int) -> tuple[FloatArray, npt.NDArray[Any]]:
        """Events ``[start, stop)`` as new ``(x, y)`` arrays."""
        x, y = self.empty(max(0, stop - start))
        self.read_into(np.array([[start, stop]]), x, y)
        return x, y

    def arrays(self) -> tuple[FloatArray, npt.NDArray[Any]] | None:
        """The whole data set as ``(x, y)`` arrays when it is in memory, else None.

        Readers index these directly instead of copying events into buffers first.
        """
        return None

    def close(self) -> None:  # noqa: B027 - sources without handles have nothing to close
        """Release open files (a later read opens them again)."""

    def _ranges(self, ranges: npt.ArrayLike) -> IntArray:
        """Check ``ranges`` lie inside the data set and return them as int64 ``(k, 2)``."""
        array = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        if len(array) and (
            (array[:, 0] < 0).any()
            or (array[:, 1] < array[:, 0]).any()
            or (array[:, 1] > self.n_events).any()
        ):
            raise ValueError(f"ranges must lie within [0, {self.n_events}), got {array.tolist()}")
        return array

    def _check_out(self, x: np.ndarray, y: np.ndarray, row: int, n: int) -> None:
        """Refuse output arrays that the rows would not fit; low-level reads trust them."""
        if x.dtype != np.float32 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must be float32 (m, {self.event_shape}), got {x.dtype} {x.shape}")
        if y.dtype != self.y_dtype or y.shape[1:] != self.target_shape:
            raise ValueError(
                f"y must be {self.y_dtype} (m, {self.target_shape}), got {y.dtype} {y.shape}"
            )
        if not (x.flags.c_contiguous and y.flags.c_contiguous and x.flags.writeable):
            raise ValueError("x and y must be writeable C-contiguous arrays")
        if row < 0 or row + n > min(len(x), len(y)):
            raise ValueError(f"rows {row}..{row + n} do not fit arrays of {len(x)} events")

    def _check_finite(
        self,
        ranges: IntArray,
        x: FloatArray,
        row: int,
        error: Callable[[int], Exception],
    ) -> None:
        """Raise ``error(event)`` for the first event of ``ranges`` with a NaN or inf input.

        Checked in slices of at most ``_CHECK_BYTES``, so the check never needs a temporary
        the size of a whole read.
        """
        n = int((ranges[:, 1] - ranges[:, 0]).sum())
        per_event = max(1, 4 * math.prod(self.event_shape))
        step = max(1, _CHECK_BYTES // per_event)
        for lo in range(row, row + n, step):
            hi = min(lo + step, row + n)
            block = x[lo:hi].reshape(hi - lo, -1)
            if np.isfinite(block).all():
                continue
            bad = lo + int(np.argmin(np.isfinite(block).all(axis=1))) - row
            ends = np.cumsum(ranges[:, 1] - ranges[:, 0])
            piece = int(np.searchsorted(ends, bad, side="right"))
            begin = int(ends[piece] - (ranges[piece, 1] - ranges[piece, 0]))
            raise error(int(ranges[piece, 0]) + bad - begin)


# --------------------------------------------------------------------------------------------
# HDF5 files
# --------------------------------------------------------------------------------------------


@dataclass
class _OpenShard:
    """One open file: its datasets and reusable file dataspaces."""

    file: h5py.File
    x: h5py.Dataset
    y: h5py.Dataset
    x_space: h5s.SpaceID
    y_space: h5s.SpaceID


class H5Source(EventSource):
    """Events read from the HDF5 file(s) of an inspected data set.

    Files are opened on the first read, not here, and at most ``_MAX_OPEN_FILES`` at a time;
    handles are dropped when the source is pickled or used in a forked child (a handle
    inherited through fork is not safe to use), so a source made in the driver works in a Ray
    worker. Reads are serialised by a lock: h5py allows one HDF5 call at a time anyway, and a
    reader's prefetch thread and the training thread may share one source.

    Every read checks its inputs for NaN and inf and raises a
    :class:`~hpsearch.errors.DataError` naming the file and the event's index in it, so a
    100 GB data set inspected without its finite scan still fails clearly on a bad event.

    Args:
        info: What :func:`~hpsearch.data.inspect_dataset` found: the files (``info.files``),
            shapes and target kind. A file holding fewer events than ``info`` lists (it changed
            since) is an error when it is opened.
        layout: Names of the input and target datasets (the same in every file).
    """

    def __init__(self, info: DatasetInfo, layout: Layout) -> None:
        shards = info.files
        counts = [int(s.n_events) for s in shards]
        if sum(counts) != info.n_events:
            raise ValueError(
                f"the shards hold {sum(counts)} events but info.n_events is {info.n_events}"
            )
        super().__init__(
            info.n_events,
            info.event_shape,
            info.target,
            info.target_shape,
            np.concatenate([[0], np.cumsum(counts)]),
        )
        self.info = info
        self.layout = layout
        # Absolute now, before the source travels to a worker with another working directory.
        self.paths: tuple[Path, ...] = tuple(Path(s.path).expanduser().resolve() for s in shards)
        self._chunk_rows: int | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget open handles (without closing them) and make a fresh lock."""
        self._open: OrderedDict[int, _OpenShard] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _guard(self) -> threading.Lock:
        """The lock of this process; after a fork, the inherited handles are dropped first."""
        if self._pid != os.getpid():
            self._reset()
        return self._lock

    @property
    def chunk_rows(self) -> int:
        """Events per chunk of the first file's inputs (1 if contiguous); opens it if needed."""
        if self._chunk_rows is None:
            with self._guard():
                chunks = self._shard(0).x.chunks
            self._chunk_rows = int(chunks[0]) if chunks else 1
        return self._chunk_rows

    def _shard(self, index: int) -> _OpenShard:
        """Open file ``index`` (or reuse it); call with the lock held."""
        shard = self._open.get(index)
        if shard is not None:
            self._open.move_to_end(index)
            return shard
        while len(self._open) >= _MAX_OPEN_FILES:
            _, oldest = self._open.popitem(last=False)
            oldest.file.close()
        shard = self._open_shard(index)
        self._open[index] = shard
        return shard

    def _open_shard(self, index: int) -> _OpenShard:
        """Open and check one file; raise a DataError that names it when it does not fit."""
        path = self.paths[index]
        layout = self.layout
        file = _open_file(path, layout)
        try:
            role = "labels" if self.target == "classification" else "targets"
            x = _get_dataset(file, path, layout.x_key, "inputs")
            y = _get_dataset(file, path, layout.y_key, role)
            _check_structure(path, layout, x, y, self.target)
            expected = int(self.bounds[index + 1] - self.bounds[index])
            fix = (
                "the file changed since the data set was inspected; inspect it again and make "
                "the split again"
            )
            if x.shape[0] < expected:
                raise DataError(
                    path,
                    layout.x_key,
                    f"the data set reaches event {expected - 1} of this file but it has only "
                    f"{x.shape[0]} events",
                    fix,
                )
            if tuple(x.shape[1:]) != self.event_shape:
                raise DataError(
                    path,
                    layout.x_key,
                    f"events have shape {tuple(x.shape[1:])}, but the data set's have "
                    f"{self.event_shape}",
                    fix,
                )
            if math.prod(y.shape[1:]) != math.prod(self.target_shape):
                raise DataError(
                    path,
                    layout.y_key,
                    f"{role} have shape {tuple(y.shape[1:])} per event, but the data set's "
                    f"have {self.target_shape}",
                    fix,
                )
            x = _with_chunk_cache(file, layout.x_key, x)
        except BaseException:
            file.close()
            raise
        return _OpenShard(file, x, y, x.id.get_space(), y.id.get_space())

    def read_into(
        self, ranges: npt.ArrayLike, x: FloatArray, y: npt.NDArray[Any], row: int = 0
    ) -> int:
        """Read ranges into consecutive rows (see :meth:`EventSource.read_into`).

        A range that crosses a file boundary is read from both files. HDF5 converts the dtype
        into the float32 / int64 arrays itself (h5py releases the GIL during ``H5Dread``).
        Ranges close together share one read of their span, whose rows are then kept (see
        :func:`_covers`): every read costs ~10 µs of Python and HDF5 overhead and two GIL
        hand-overs, and a buffer of a training part would otherwise need a thousand.
        """
        array = self._ranges(ranges)
        array = array[array[:, 1] > array[:, 0]]
        n = int((array[:, 1] - array[:, 0]).sum())
        self._check_out(x, y, row, n)
        if n == 0:
            return 0
        pieces = _cut_at(array, self.bounds).tolist()
        max_rows = max(1, _COVER_BYTES // max(1, self.event_bytes))
        at = row
        with self._guard():
            for file_index, lo, hi, members in _covers(pieces, max_rows):
                shard = self._shard(file_index)
                offset = int(self.bounds[file_index])
                count = sum(b - a for a, b in members)
                try:
                    self._read_x(shard, offset, lo, hi, members, x, at)
                    self._read_y(shard, offset, lo, hi, members, y, at)
                except OSError as err:  # a read HDF5 itself could not do
                    raise DataError(
                        self.paths[file_index],
                        self.layout.x_key,
                        f"reading events {lo - offset}..{hi - offset - 1} failed: {err}",
                        "the file changed while it was being read; inspect it again",
                    ) from err
                at += count
        self._check_finite(array, x, row, self._non_finite)
        return n

    def _read_x(
        self,
        shard: _OpenShard,
        offset: int,
        lo: int,
        hi: int,
        members: list[tuple[int, int]],
        x: FloatArray,
        row: int,
    ) -> None:
        """Inputs of ``members`` (global ranges within ``[lo, hi)``) into x from ``row``."""
        if len(members) == 1:
            _h5_read(shard.x, shard.x_space, lo - offset, hi - lo, x[row : row + hi - lo])
            return
        span = np.empty((hi - lo, *x.shape[1:]), dtype=np.float32)
        _h5_read(shard.x, shard.x_space, lo - offset, hi - lo, span)
        _keep(span, lo, members, x, row)

    def _read_y(
        self,
        shard: _OpenShard,
        offset: int,
        lo: int,
        hi: int,
        members: list[tuple[int, int]],
        y: npt.NDArray[Any],
        row: int,
    ) -> None:
        """Targets of ``members`` (global ranges within ``[lo, hi)``) into y from ``row``."""
        if len(members) == 1:
            _h5_read(shard.y, shard.y_space, lo - offset, hi - lo, y[row : row + hi - lo])
            return
        span = np.empty((hi - lo, *y.shape[1:]), dtype=y.dtype)
        _h5_read(shard.y, shard.y_space, lo - offset, hi - lo, span)
        _keep(span, lo, members, y, row)

    def _non_finite(self, event: int) -> DataError:
        """The error for a NaN/inf in global ``event``: its file and its index in that file."""
        index = int(np.searchsorted(self.bounds, event, side="right")) - 1
        offset = int(self.bounds[index])
        return _non_finite_error(
            self.paths[index], self.layout.x_key, event - offset, offset=offset
        )

    def close(self) -> None:
        """Close every open file; a later read opens them again."""
        if self._pid != os.getpid():
            self._reset()  # the parent's handles are not ours to close
            return
        with self._lock:
            while self._open:
                _, shard = self._open.popitem()
                shard.file.close()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without file handles or the lock, which cannot cross processes."""
        state = self.__dict__.copy()
        for key in ("_open", "_lock", "_pid"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        files = str(self.paths[0]) + (
            f" +{len(self.paths) - 1} files" if len(self.paths) > 1 else ""
        )
        return f"H5Source({files!r}, {self.layout!r}, n_events={self.n_events})"


def _with_chunk_cache(file: h5py.File, key: str, x: h5py.Dataset) -> h5py.Dataset:
    """Open ``x`` again with a chunk cache that holds two rows of its chunks.

    Two rows of chunks let consecutive ranges of one window share a partly read chunk, which
    would otherwise be decompressed once per range; the file's default (1 MiB) is too small for
    chunks of large events, and a fixed large cache per open file would add up over shards.
    """
    if x.chunks is None:
        return x
    row_bytes = x.dtype.itemsize * math.prod(x.shape[1:])
    want = min(max(2 * int(x.chunks[0]) * row_bytes, _MIN_CHUNK_CACHE), _MAX_CHUNK_CACHE)
    chunks_per_row = math.prod(-(-s // c) for s, c in zip(x.shape[1:], x.chunks[1:], strict=True))
    access = h5p.create(h5p.DATASET_ACCESS)
    access.set_chunk_cache(max(521, 20 * chunks_per_row + 1), want, 0.75)
    return h5py.Dataset(h5d.open(file.id, key.encode(), dapl=access))


def _h5_read(
    dataset: h5py.Dataset, space: h5s.SpaceID, start: int, count: int, out: np.ndarray
) -> None:
    """Rows ``start:start+count`` of ``dataset`` into ``out`` (``count`` rows, C-contiguous).

    ``H5Dread`` converts to ``out``'s dtype. The memory dataspace is made from ``out``'s own
    shape, so HDF5 itself refuses to write outside it.
    """
    rest = dataset.shape[1:]
    space.select_hyperslab((start, *((0,) * len(rest))), (count, *rest))
    dataset.id.read(h5s.create_simple(out.shape), space, out)


def _keep(
    span: np.ndarray, lo: int, members: list[tuple[int, int]], out: np.ndarray, row: int
) -> None:
    """Copy the rows of ``members`` (ranges within a span read from ``lo``) into ``out``."""
    keep = np.concatenate([np.arange(a - lo, b - lo) for a, b in members])
    np.take(span, keep, axis=0, out=out[row : row + len(keep)])


def _covers(
    pieces: list[list[int]], max_rows: int
) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
    """Group ranges ``(file, start, stop)`` into reads: ``(file, lo, hi, ranges)``.

    Consecutive ascending ranges of one file share one read of their span ``[lo, hi)`` while
    they fill at least half of it (and it stays below ``max_rows``): a read costs ~10 µs of
    Python and HDF5 overhead plus the bytes, and holds the GIL throughout, so for a training
    part (70% of the events, in blocks of 32) reading the span of a window in one call costs
    far less than a call per block. Sparse ranges (a 15% evaluation part) are read one by one,
    so as not to read seven times the bytes needed.
    """
    groups: list[tuple[int, int, int, list[tuple[int, int]]]] = []
    kept = 0
    for f, a, b in pieces:
        if groups:
            file, lo, hi, members = groups[-1]
            span = b - lo
            if file == f and a >= hi and span <= max_rows and 2 * (kept + b - a) >= span:
                members.append((a, b))
                groups[-1] = (file, lo, b, members)
                kept += b - a
                continue
        groups.append((f, a, b, [(a, b)]))
        kept = b - a
    return groups


def _cut_at(ranges: IntArray, bounds: IntArray) -> IntArray:
    """Cut ranges at file bounds: int ``(m, 3)`` of (file, start, stop), in the given order."""
    first = np.searchsorted(bounds, ranges[:, 0], side="right") - 1
    last = np.searchsorted(bounds, ranges[:, 1] - 1, side="right") - 1
    if (first == last).all():
        return np.stack([first, ranges[:, 0], ranges[:, 1]], axis=1).astype(np.int64)
    counts = last - first + 1
    owner = np.repeat(np.arange(len(ranges)), counts)
    files = first[owner] + (
        np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    starts = np.maximum(ranges[owner, 0], bounds[files])
    stops = np.minimum(ranges[owner, 1], bounds[files + 1])
    return np.stack([files, starts, stops], axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


class MemorySource(EventSource):
    """Events held in numpy arrays: the whole data set, in memory.

    Args:
        x: Inputs ``(n, *event_shape)``; converted to C-contiguous float32 if they are not.
        y: Targets ``(n,)`` of class indices (integer or bool: classification) or
            ``(n, *target_shape)`` values (float: regression); converted to int64 / float32.
        target: The target kind; by default, integer or bool ``y`` classify, float ``y``
            regress.
        chunk_rows: The window alignment to report (see :attr:`EventSource.chunk_rows`): the
            HDF5 file's, to serve exactly the batches an :class:`H5Source` of it serves.
        bounds: The file bounds to report (see :attr:`EventSource.bounds`); one file if None.
        check_finite: Check every input is finite (a ValueError naming the first bad row).
            :func:`load_into_memory` checks as it reads, naming the file instead.
    """

    def __init__(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        target: TargetKind | None = None,
        chunk_rows: int = 1,
        bounds: npt.ArrayLike | None = None,
        check_finite: bool = True,
    ) -> None:
        y_array = np.asarray(y)
        if target is None:
            integral = np.issubdtype(y_array.dtype, np.integer) or y_array.dtype == np.bool_
            target = "classification" if integral else "regression"
        x_array = np.ascontiguousarray(x, dtype=np.float32)
        y_array = np.ascontiguousarray(y_array, dtype=_y_dtype(target))
        if x_array.ndim < 2 or len(x_array) != len(y_array):
            raise ValueError(
                f"x must be (n, *event_shape) and y (n, ...) with the same n, got "
                f"{x_array.shape} and {y_array.shape}"
            )
        if target == "classification" and y_array.ndim != 1:
            raise ValueError(f"class labels must be (n,), got {y_array.shape}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        n = len(x_array)
        super().__init__(
            n, x_array.shape[1:], target, y_array.shape[1:], [0, n] if bounds is None else bounds
        )
        self.x = x_array
        self.y = y_array
        self._chunk_rows = int(chunk_rows)
        # Set by memory_source: pickles as "load it from the files in the receiving process".
        self._origin: tuple[DatasetInfo, Layout] | None = None
        if check_finite:
            whole = np.array([[0, n]], dtype=np.int64)
            self._check_finite(whole, self.x, 0, _non_finite_row)

    @property
    def chunk_rows(self) -> int:
        """The alignment given to the constructor (the HDF5 file's, for a loaded data set)."""
        return self._chunk_rows

    def read_into(
        self, ranges: npt.ArrayLike, x: FloatArray, y: npt.NDArray[Any], row: int = 0
    ) -> int:
        """Copy ranges into consecutive rows (see :meth:`EventSource.read_into`)."""
        array = self._ranges(ranges)
        n = int((array[:, 1] - array[:, 0]).sum())
        self._check_out(x, y, row, n)
        at = row
        for a, b in array.tolist():
            x[at : at + b - a] = self.x[a:b]
            y[at : at + b - a] = self.y[a:b]
            at += b - a
        return n

    def arrays(self) -> tuple[FloatArray, npt.NDArray[Any]]:
        """The arrays themselves (not copies): readers index them directly."""
        return self.x, self.y

    @property
    def nbytes(self) -> int:
        """Memory the arrays take."""
        return int(self.x.nbytes + self.y.nbytes)

    def __reduce_ex__(self, protocol: Any) -> str | tuple[Any, ...]:
        """Pickle a cached data set as a reference to its files, not as gigabytes of arrays.

        The receiving process loads it (once) through its own :func:`memory_source` cache.
        A MemorySource made from arrays pickles its arrays.
        """
        if self._origin is not None:
            return (memory_source, self._origin)
        return super().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        return (
            f"MemorySource(n_events={self.n_events}, event_shape={self.event_shape}, "
            f"target={self.target!r}, {self.nbytes / 2**20:.1f} MiB)"
        )


def _non_finite_row(row: int) -> ValueError:
    return ValueError(f"x holds a non-finite value (NaN or inf) in row {row}")


def load_into_memory(info: DatasetInfo, layout: Layout) -> MemorySource:
    """Read a whole data set into one preallocated pair of arrays.

    The arrays are allocated once at their final size and filled by chunk-aligned reads of
    about 64 MiB, converted to float32 / int64 inside HDF5, so the peak is the data set plus
    one bounded NaN check, never twice the data set. Every read is checked for NaN and inf.

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` described it.
        layout: Names of its input and target datasets.

    Returns:
        A :class:`MemorySource` with the files' ``chunk_rows`` and ``bounds``, so a reader
        serves the same batches from it as from an :class:`H5Source` of the same files.

    Raises:
        DataError: A file is missing or malformed, or an input is NaN or inf.
    """
    source = H5Source(info, layout)
    try:
        chunk = source.chunk_rows
        x, y = source.empty(source.n_events)
        per_event = max(1, source.event_bytes)
        step = max(chunk, _LOAD_BYTES // per_event // chunk * chunk)
        for f in range(len(source.paths)):
            lo, hi = int(source.bounds[f]), int(source.bounds[f + 1])
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                source.read_into(np.array([[start, stop]]), x, y, row=start)
    finally:
        source.close()
    return MemorySource(
        x, y, target=info.target, chunk_rows=chunk, bounds=source.bounds, check_finite=False
    )


# --------------------------------------------------------------------------------------------
# The per-process cache
# --------------------------------------------------------------------------------------------

_CacheKey = tuple[Any, ...]
_cache: dict[_CacheKey, MemorySource] = {}
_cache_lock = threading.Lock()


def _reset_cache_lock() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()


# A lock held by another thread at fork time would stay locked forever in the child.
os.register_at_fork(after_in_child=_reset_cache_lock)


def _cache_key(info: DatasetInfo, layout: Layout) -> _CacheKey:
    """What identifies a loaded data set: each file's path, size and mtime, and the layout."""
    files = []
    for shard in info.files:
        path = Path(shard.path).expanduser().resolve()
        try:
            stat = path.stat()
        except OSError:
            _open_file(path, layout)  # raises the DataError that says what is wrong
            raise
        files.append((str(path), stat.st_size, stat.st_mtime_ns, int(shard.n_events)))
    return (tuple(files), layout, info.target, info.event_shape, info.target_shape)


def memory_source(info: DatasetInfo, layout: Layout) -> MemorySource:
    """The data set in memory, loaded once per process and shared by every later call.

    Ray Tune reuses a worker process for many trials; each trial asking for the data set gets
    the copy the first one loaded, as long as no file changed (the key is every file's
    absolute path, size and modification time, plus the layout). A changed file is loaded
    again and the stale copy dropped. The returned source is shared: treat its arrays as
    read-only.

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` described it.
        layout: Names of its input and target datasets.

    Returns:
        The cached :class:`MemorySource`; pickled, it loads itself again in the receiving
        process instead of carrying its arrays.
    """
    key = _cache_key(info, layout)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        paths = {f[0] for f in key[0]}
        for old in [k for k in _cache if paths & {f[0] for f in k[0]}]:
            del _cache[old]  # an older version of these files
        source = load_into_memory(info, layout)
        source._origin = (info, layout)
        _cache[key] = source
        return source


def clear_memory_cache() -> None:
    """Drop every data set :func:`memory_source` holds (for tests, or to free the memory)."""
    with _cache_lock:
        _cache.clear()
