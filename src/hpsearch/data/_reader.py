"""Batches of one split part, from any event source, with bounded memory.

Files can be far larger than memory (100 GB in one use case) and every trial of a search runs
in a Ray worker process, so the reader follows these rules:

* **Few, large reads.** Reading batch by batch cost ~16 HDF5 calls per batch of 32 events and
  capped a reader at ~1,000 batches/s, slower than a GPU trains. The reader instead reads a
  *buffer* of many batches at once, one call per contiguous range, and cuts batches from it
  in memory.
* **Bounded memory.** A reader holds at most two buffers (the one it serves and the next),
  about ``buffer_bytes`` together, whatever the size of the data set.
* **Shuffled like a random sample, read like a file.** The part is cut into chunk-aligned
  *windows*; an epoch visits the windows in a seeded random order, groups consecutive ones
  into buffers and shuffles the events inside each buffer. A batch thus mixes many places of
  the file (a file sorted by class still gives mixed batches) while every read stays a slice.
* **Reads overlap training.** A background thread reads the next buffer while the current
  one is served: h5py releases the GIL inside ``H5Dread``, and TensorFlow runs its step
  without it.
* **Same batches from any source.** The order depends only on the seed, the epoch, the
  blocks and the source's ``chunk_rows`` and ``bounds``, so an :class:`H5Source` and a
  :class:`MemorySource` of the same files give identical batches, and so does any process.
* **Picklable.** Threads, buffers and file handles are dropped when a reader is pickled or
  forked, and made again on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from hpsearch.data._source import EventSource
from hpsearch.seeding import derive_rng

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "DEFAULT_WINDOW_BYTES",
    "BatchReader",
    "iterate",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Batch = tuple[FloatArray, npt.NDArray[Any]]

#: Default memory for a reader's event data: two buffers (served and read ahead) together.
DEFAULT_BUFFER_BYTES = 64 * 2**20
#: Default size of a window, the unit of the shuffle's file order: a few chunks.
DEFAULT_WINDOW_BYTES = 2 * 2**20
#: Windows are made small enough that a full buffer holds at least this many of them, so that
#: a batch draws from this many places of the file even when buffers are small.
MIN_WINDOWS_PER_BUFFER = 16
#: Name prefix of the prefetch threads (one per reader, while it reads).
THREAD_PREFIX = "hpsearch-reader"


@dataclass(frozen=True)
class _Windows:
    """The part cut into windows: window ``w`` is pieces ``first[w]:first[w + 1]``.

    Pieces are contiguous ranges ``[starts, stops)`` sorted by start; a window is the part's
    events inside one cell of a grid of ``length`` events laid over every file from its
    start, so that cells align with the file's chunks and never span two files.
    """

    starts: IntArray
    stops: IntArray
    first: IntArray
    sizes: IntArray
    length: int
    buffer_events: int


@dataclass(frozen=True)
class _Epoch:
    """One epoch's layout of windows into buffers.

    Buffer ``j`` is windows ``order[cut[j]:cut[j + 1]]`` and covers positions
    ``begin[j]:begin[j + 1]`` of the epoch's sequence of events.
    """

    order: IntArray
    cut: IntArray
    begin: IntArray


@dataclass(frozen=True)
class _Buffer:
    """Events of one buffer; ``order`` lists their rows in sequence order (None: as stored)."""

    x: FloatArray
    y: npt.NDArray[Any]
    order: IntArray | None

    def rows(self, a: int, b: int) -> Batch:
        """Copies of the events at sequence positions ``a:b`` of this buffer."""
        if self.order is None:
            return self.x[a:b].copy(), self.y[a:b].copy()
        index = self.order[a:b]
        return np.take(self.x, index, axis=0), np.take(self.y, index, axis=0)


class BatchReader:
    """Batches of one split part, served from an event source with bounded memory.

    With ``shuffle=False`` the batches run through the part in file order and cover every
    event exactly once, for evaluation. With ``shuffle=True`` each epoch has its own order,
    drawn as follows (everything seeded by ``seed`` and the epoch number):

    1. The part's blocks are cut into *windows*: its events inside consecutive cells of
       ``window_bytes`` (at most 1/16 of a buffer), aligned to the HDF5 chunks
       (``source.chunk_rows``) and to the file bounds.
    2. The windows are permuted, and consecutive ones grouped into *buffers* of about
       ``buffer_bytes / 2``.
    3. The events of each buffer are permuted, and the epoch's sequence of events (buffer
       after buffer) is cut into batches; a batch may span two buffers.

    A buffer is read with one call per window (its ranges read as one span when they fill
    most of it), and a batch is cut from it in memory, so a batch costs no file access. The
    order depends only on the seed, the epoch, the blocks and the source's ``chunk_rows`` and
    ``bounds``, so batches can be read in any order and in any process (reading in order is
    what is fast), and an :class:`~hpsearch.data.H5Source` and a
    :class:`~hpsearch.data.MemorySource` of the same files give the same batches. A part
    that fits one buffer is shuffled completely.

    Memory: a reader holds at most two buffers, the one it serves and the next (read ahead
    by a background thread while the current one is served): about ``buffer_bytes`` in all,
    plus the batch. An evaluation part that fits in two buffers is read once and kept. From a
    source in memory nothing is copied: batches are gathered from its arrays directly.

    Nothing is read in ``__init__``; the source opens its files on the first batch. Threads,
    buffers and handles are dropped when the reader is pickled or used in a forked child, so a
    reader made in the driver works in a Ray worker.

    Args:
        source: Where the events come from (:class:`~hpsearch.data.H5Source`,
            :class:`~hpsearch.data.MemorySource`, ...).
        blocks: The part of a :class:`Split` to read, int array ``(k, 2)`` of ``[start, stop)``
            in the source's global event indices.
        batch_size: Events per batch (the last batch may be smaller unless ``drop_remainder``).
        shuffle: Shuffle for training (True) or read in file order for evaluation (False).
        seed: Seed of the shuffle, used through :func:`hpsearch.seeding.derive_rng`.
        max_events: Read at most this many events: the first blocks of ``blocks``, which in a
            :class:`Split` are a random sample of the file. For quick, cheap trials.
        drop_remainder: Leave out the last, smaller batch (with shuffle, a different set of
            events is left out each epoch).
        buffer_bytes: Memory for the event data the reader holds: two buffers of half this.
            Larger buffers mix a shuffled epoch better (a batch draws from more places of the
            file); the order changes with it.
        window_bytes: Largest window: the contiguous stretch of the file that the shuffle
            keeps together. Smaller windows mix better, larger ones read in fewer calls; the
            order changes with it.
        prefetch: Read the next buffer in a background thread while the current one is
            served. False reads every buffer when it is first needed, in the caller's thread.

    Attributes:
        source: The event source.
        events_read: Events copied from the source into buffers so far, read-ahead included
            (for tests and benchmarks; from a source in memory, events gathered into buffers'
            index lists).
    """

    def __init__(
        self,
        source: EventSource,
        blocks: npt.ArrayLike,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        max_events: int | None = None,
        drop_remainder: bool = False,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        prefetch: bool = True,
    ) -> None:
        if not isinstance(source, EventSource):
            raise TypeError(
                f"source must be an EventSource (H5Source, MemorySource), got {type(source)!r}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be >= 1 or None, got {max_events}")
        if buffer_bytes < 1 or window_bytes < 1:
            raise ValueError(
                f"buffer_bytes and window_bytes must be >= 1, got {buffer_bytes}, {window_bytes}"
            )
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
        if int(ordered[:, 1].max()) > source.n_events:
            raise ValueError(
                f"blocks reach event {int(ordered[:, 1].max()) - 1} but the source has only "
                f"{source.n_events} events; make the split from this data set"
            )
        if max_events is not None:
            array = _take_first(array, max_events)

        self.source = source
        self.blocks: IntArray = array
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.buffer_bytes = buffer_bytes
        self.window_bytes = window_bytes
        self.prefetch = prefetch
        self.events_read = 0
        self._n_events = int((array[:, 1] - array[:, 0]).sum())
        n_batches = self._n_events // batch_size
        if not drop_remainder:
            n_batches = -(-self._n_events // batch_size)
        if n_batches == 0:
            raise ValueError(
                f"the split has {self._n_events} events, fewer than one batch of {batch_size} "
                "with drop_remainder=True; lower the batch size"
            )
        self._n_batches = n_batches
        self._epoch = 0
        self._windows: _Windows | None = None
        self._reset()

    def _reset(self) -> None:
        """Fresh per-process state: no buffers, no thread, a new lock."""
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._buffers: dict[tuple[int, int], Future[_Buffer]] = {}
        self._plans: dict[int, _Epoch] = {}
        self._pid = os.getpid()

    def _guard(self) -> threading.RLock:
        """The lock of this process; in a forked child, the parent's state is dropped first."""
        if self._pid != os.getpid():
            self._reset()
        return self._lock

    # -- size and epochs ----------------------------------------------------------------------

    @property
    def n_events(self) -> int:
        """Events in the part (after ``max_events``), whether or not batches drop some."""
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
        trial sees the same batches it would have seen without the interruption. Buffers of
        other epochs are dropped (a buffer read ahead for this epoch is kept).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        with self._guard():
            self._epoch = epoch
            key = self._key(epoch)
            self._drop(lambda k: k[0] != key)
            for stale in [e for e in self._plans if e not in (key, key + 1)]:
                del self._plans[stale]

    @property
    def window_events(self) -> int:
        """Length of the window grid in events (opens the source to learn its chunks)."""
        return self._layout().length

    @property
    def buffer_events(self) -> int:
        """Events per buffer, nominally.

        A buffer takes the windows that start within its stretch of this many events, so it
        holds fewer than ``buffer_events + window_events``, which fit in half of
        ``buffer_bytes``.
        """
        return self._layout().buffer_events

    # -- the order ----------------------------------------------------------------------------

    def _key(self, epoch: int) -> int:
        """Buffers are per epoch when shuffled; without shuffle every epoch is the same."""
        return epoch if self.shuffle else 0

    def _layout(self) -> _Windows:
        """The part's windows, computed on first use (the source's chunks may need a file)."""
        with self._guard():
            if self._windows is None:
                self._windows = _make_windows(
                    self.blocks,
                    self.source.bounds,
                    self.source.event_bytes,
                    self.source.chunk_rows,
                    self.buffer_bytes,
                    self.window_bytes,
                )
            return self._windows

    def _plan(self, key: int) -> _Epoch:
        """The layout of epoch ``key`` (see :meth:`_key`): window order and buffer cuts."""
        plan = self._plans.get(key)
        if plan is None:
            windows = self._layout()
            n = len(windows.sizes)
            if self.shuffle:
                order = derive_rng(self.seed, "reader", "windows", key).permutation(n)
            else:
                order = np.arange(n)
            sizes = windows.sizes[order]
            begins = np.cumsum(sizes) - sizes
            # A buffer takes the windows that start within its stretch of buffer_events.
            group = begins // windows.buffer_events
            new = np.ones(n, dtype=bool)
            new[1:] = group[1:] != group[:-1]
            cut = np.append(np.flatnonzero(new), n).astype(np.int64)
            begin = np.append(begins[cut[:-1]], self._n_events).astype(np.int64)
            plan = _Epoch(order.astype(np.int64), cut, begin)
            self._plans[key] = plan
        return plan

    def _pieces(self, key: int, j: int) -> tuple[IntArray, IntArray, IntArray]:
        """Buffer ``j``'s ranges in file order and the end of each window in them."""
        windows = self._layout()
        plan = self._plan(key)
        chosen = np.sort(plan.order[plan.cut[j] : plan.cut[j + 1]])
        counts = windows.first[chosen + 1] - windows.first[chosen]
        ends = np.cumsum(counts)
        index = np.repeat(windows.first[chosen] - (ends - counts), counts) + np.arange(ends[-1])
        return windows.starts[index], windows.stops[index], ends

    # -- reading ------------------------------------------------------------------------------

    def batch(self, index: int) -> Batch:
        """Batch ``index`` of the current epoch.

        Args:
            index: Batch number, ``0 <= index < len(self)`` (negative counts from the end).

        Returns:
            ``(x, y)``: inputs as float32 ``(batch, *event_shape)``; targets as int64
            ``(batch,)`` class labels or float32 ``(batch, *target_shape)`` values.

        Raises:
            IndexError: ``index`` out of range (ends plain iteration over the reader).
            DataError: A file or a dataset is missing or malformed, or the buffer holding the
                batch has a NaN or inf (the message names the file and the event's index in
                it); raised here also when the background thread met it.
        """
        if index < 0:
            index += self._n_batches
        if not 0 <= index < self._n_batches:
            raise IndexError(f"batch {index} out of range for {self._n_batches} batches")
        lo = index * self.batch_size
        hi = min(lo + self.batch_size, self._n_events)
        with self._guard():
            key = self._key(self._epoch)
            plan = self._plan(key)
            j0 = int(np.searchsorted(plan.begin, lo, side="right")) - 1
            j1 = int(np.searchsorted(plan.begin, hi - 1, side="right")) - 1
            ahead = self._successor(key, j1, plan) if self._reads_ahead() else None
            wanted = {(key, j) for j in range(j0, j1 + 1)}
            if j0 == j1:
                # The usual case: ask for the next buffer now, so that the thread reads it
                # while this one is served. (Never more than two buffers are held.)
                self._drop(lambda k: k not in wanted and k != ahead)
                futures = [self._request(key, j0)]
                if ahead is not None:
                    self._request(*ahead)
            else:
                self._drop(lambda k: k not in wanted)
                futures = [self._request(key, j) for j in range(j0, j1 + 1)]
            parts = []
            for j, future in zip(range(j0, j1 + 1), futures, strict=True):
                buffer = self._result((key, j), future)
                start = int(plan.begin[j])
                stop = int(plan.begin[j + 1])
                parts.append(buffer.rows(max(lo, start) - start, min(hi, stop) - start))
            if j0 != j1:
                # Free the earlier buffers before the thread allocates the next one.
                del futures, buffer
                self._drop(lambda k: k != (key, j1))
                if ahead is not None:
                    self._request(*ahead)
        if len(parts) == 1:
            return parts[0]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )

    def _reads_ahead(self) -> bool:
        """Whether to read the next buffer before it is asked for: from files, if allowed."""
        return self.prefetch and self.source.arrays() is None

    def _successor(self, key: int, j: int, plan: _Epoch) -> tuple[int, int] | None:
        """The buffer after ``(key, j)``: the next one, or the next epoch's first."""
        if j + 1 < len(plan.cut) - 1:
            return key, j + 1
        after = (key + 1, 0) if self.shuffle else (key, 0)
        return None if after == (key, j) else after

    def _drop(self, condition: Any) -> None:
        """Forget the buffers whose key meets ``condition`` (cancelling reads not started)."""
        for k in [k for k in self._buffers if condition(k)]:
            self._buffers.pop(k).cancel()

    def _request(self, key: int, j: int) -> Future[_Buffer]:
        """The buffer ``(key, j)``: held, being read, or read now (in a thread if possible).

        What to read is worked out here, under the reader's lock; the thread only reads, and
        never takes that lock (the caller holds it while it waits for the thread).
        """
        future = self._buffers.get((key, j))
        if future is not None:
            return future
        starts, stops, window_ends = self._pieces(key, j)
        if self._reads_ahead():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=THREAD_PREFIX)
            future = self._executor.submit(self._load, key, j, starts, stops, window_ends)
        else:
            future = Future()
            try:
                future.set_result(self._load(key, j, starts, stops, window_ends))
            except BaseException as err:  # re-raised by _result, in the caller
                future.set_exception(err)
        self._buffers[(key, j)] = future
        return future

    def _result(self, key: tuple[int, int], future: Future[_Buffer]) -> _Buffer:
        """Wait for a buffer; a failed read is forgotten (so a later call tries again)."""
        try:
            return future.result()
        except BaseException:
            if self._buffers.get(key) is future:
                del self._buffers[key]
            raise

    def _load(
        self, key: int, j: int, starts: IntArray, stops: IntArray, window_ends: IntArray
    ) -> _Buffer:
        """Read buffer ``j`` of epoch ``key``, whose ranges are given (in any thread)."""
        n = int((stops - starts).sum())
        order: IntArray | None = None
        if self.shuffle:
            order = derive_rng(self.seed, "reader", "buffer", key, j).permutation(n)
        arrays = self.source.arrays()
        if arrays is not None:
            # In memory: the buffer is a list of event indices into the source's arrays.
            lengths = stops - starts
            events = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(n)
            self.events_read += n
            return _Buffer(arrays[0], arrays[1], events if order is None else events[order])
        x, y = self.source.empty(n)
        row = 0
        first = 0
        for last in window_ends.tolist():
            # One call per window: its ranges, in file order.
            ranges = np.stack([starts[first:last], stops[first:last]], axis=1)
            row += self.source.read_into(ranges, x, y, row)
            first = last
        self.events_read += n
        return _Buffer(x, y, order)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the prefetch thread, drop the buffers and close the source's files.

        The reader stays usable: a later batch reads again (and starts a new thread).
        """
        if self._pid != os.getpid():
            self._reset()
            self.source.close()
            return
        with self._lock:
            self._drop(lambda k: True)
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self.source.close()

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
        """Pickle without the thread, the buffers and the lock, which cannot cross processes."""
        state = self.__dict__.copy()
        for key in ("_lock", "_executor", "_buffers", "_plans", "_pid"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        return (
            f"BatchReader({self.source!r}, n_events={self._n_events}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, epoch={self._epoch})"
        )


def _make_windows(
    blocks: IntArray,
    bounds: IntArray,
    event_bytes: int,
    chunk_rows: int,
    buffer_bytes: int,
    window_bytes: int,
) -> _Windows:
    """Cut the part's blocks into windows (see :class:`_Windows`) and size the buffers."""
    half = max(1, buffer_bytes // 2 // max(1, event_bytes))
    length = max(1, min(window_bytes // max(1, event_bytes), half // MIN_WINDOWS_PER_BUFFER))
    if chunk_rows <= length:
        length = length // chunk_rows * chunk_rows
    elif chunk_rows <= half // 4:
        length = chunk_rows  # one chunk per window still leaves four windows per buffer
    # Buffers take windows that start within buffer_events, so they hold < buffer_events +
    # length events: keep two of them within buffer_bytes.
    buffer_events = max(1, half - length)

    merged = _coalesce(blocks)
    edges = np.concatenate(
        [np.arange(bounds[f], bounds[f + 1], length) for f in range(len(bounds) - 1)]
    ).astype(np.int64)
    a, b = merged[:, 0], merged[:, 1]
    lo = np.searchsorted(edges, a, side="right")  # first edge after a
    hi = np.searchsorted(edges, b, side="left")  # edges before b
    counts = hi - lo + 1
    owner = np.repeat(np.arange(len(merged)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    inner_start = edges[np.clip(lo[owner] + k - 1, 0, len(edges) - 1)]
    inner_stop = edges[np.clip(lo[owner] + k, 0, len(edges) - 1)]
    starts = np.where(k == 0, a[owner], inner_start)
    stops = np.where(k == counts[owner] - 1, b[owner], inner_stop)
    cell = np.searchsorted(edges, starts, side="right") - 1
    new = np.ones(len(cell), dtype=bool)
    new[1:] = cell[1:] != cell[:-1]
    first = np.append(np.flatnonzero(new), len(cell)).astype(np.int64)
    sizes = np.add.reduceat(stops - starts, first[:-1]).astype(np.int64)
    return _Windows(
        starts.astype(np.int64), stops.astype(np.int64), first, sizes, int(length), buffer_events
    )


def _coalesce(blocks: IntArray) -> IntArray:
    """Sort blocks by start and merge touching ones, for the fewest reads in file order."""
    blocks = blocks[np.argsort(blocks[:, 0], kind="stable")]
    new_run = np.ones(len(blocks), dtype=bool)
    new_run[1:] = blocks[1:, 0] != blocks[:-1, 1]
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], len(blocks)) - 1
    return np.stack([blocks[run_starts, 0], blocks[run_ends, 1]], axis=1).astype(np.int64)


def _take_first(blocks: IntArray, max_events: int) -> IntArray:
    """The first blocks holding ``max_events`` events, the last one cut short if needed."""
    ends = np.cumsum(blocks[:, 1] - blocks[:, 0])
    if ends[-1] <= max_events:
        return blocks
    keep = int(np.searchsorted(ends, max_events, side="left")) + 1
    taken = blocks[:keep].copy()
    taken[-1, 1] -= int(ends[keep - 1]) - max_events
    return taken


def iterate(reader: BatchReader) -> Iterator[Batch]:
    """Yield every batch of the reader's current epoch, for plain numpy evaluation loops.

    The epoch is not advanced; call ``reader.on_epoch_end()`` for that.
    """
    for index in range(len(reader)):
        yield reader.batch(index)
