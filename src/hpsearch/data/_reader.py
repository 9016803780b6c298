"""Reading batches of one split part, never a whole dataset at once.

Files can be far larger than memory (100 GB in one use case), and every trial of a search runs
in its own Ray worker process, so the reader follows two rules:

* **Slices, not fancy indexing.** Every part of a batch is read as a contiguous slice: HDF5
  reads a slice in one call but reads a list of random indices point by point.
* **Picklable readers.** A reader opens its file on first use and drops the handle when
  pickled, so it can be built in the driver and shipped to a worker process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from hpsearch.data._files import (
    Layout,
    _check_structure,
    _get_dataset,
    _non_finite_error,
    _open_file,
)
from hpsearch.errors import DataError
from hpsearch.seeding import derive_rng

__all__ = ["BatchReader", "iterate"]

IntArray = npt.NDArray[np.int64]

# HDF5 chunk cache per open reader. The 1 MiB default is smaller than a typical chunk of long
# waveforms, and a chunk that does not fit the cache is decompressed again for every batch.
_CHUNK_CACHE_BYTES = 32 * 2**20


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
