"""Adapter from :class:`~hpsearch.data.BatchReader` to ``keras.utils.PyDataset``.

This module imports Keras (and so TensorFlow) at import time; :mod:`hpsearch.data` imports it
only when ``keras_dataset`` is first used, so that the CLI, the spec checks and the report do
not pay the seconds that TensorFlow takes to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

from hpsearch.data._reader import BatchReader

__all__ = ["keras_dataset"]

# Keras 3 releases whose PyDataset has on_epoch_begin call it at the start of every epoch.
_KERAS_CALLS_EPOCH_BEGIN = hasattr(keras.utils.PyDataset, "on_epoch_begin")


class _ReaderDataset(keras.utils.PyDataset):
    """A PyDataset that forwards every call to a :class:`BatchReader`.

    ``workers=1`` and no multiprocessing: Keras then reads batches in the training process
    itself (with ``tf.data`` prefetching), which is what a Ray worker that already is its own
    process wants; a pool would fork a process holding TensorFlow and an HDF5 handle.
    """

    def __init__(
        self,
        reader: BatchReader,
        add_channel_axis: bool,
        transform: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]] | None,
        before_read: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.reader = reader
        self.add_channel_axis = add_channel_axis
        self.transform = transform
        self.before_read = before_read
        self._in_epoch = False

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        if self.before_read is not None:
            self.before_read()
        x, y = self.reader.batch(index)
        if self.transform is not None:
            x = np.asarray(self.transform(x), dtype=np.float32)
        if self.add_channel_axis:
            x = x[..., np.newaxis]
        return x, y

    def on_epoch_begin(self) -> None:
        self._in_epoch = True

    def on_epoch_end(self) -> None:
        """Advance the reader to its next epoch, unless no epoch began since the last call.

        ``fit`` and ``evaluate`` call ``on_epoch_end`` once more, in ``reset()``, before the
        first epoch begins. Ignoring that call keeps training epoch ``e`` on the reader's epoch
        ``e``, so a trial resumed with ``reader.set_epoch(e)`` and ``fit(initial_epoch=e)``
        sees the batches it would have seen without the interruption. (Keras versions that
        never call ``on_epoch_begin`` get every call forwarded.)
        """
        if self._in_epoch or not _KERAS_CALLS_EPOCH_BEGIN:
            self._in_epoch = False
            self.reader.on_epoch_end()


def keras_dataset(
    reader: BatchReader,
    *,
    add_channel_axis: bool = True,
    transform: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]] | None = None,
    before_read: Callable[[], None] | None = None,
) -> keras.utils.PyDataset:
    """Wrap ``reader`` for ``model.fit`` / ``model.evaluate``.

    Keras calls ``on_epoch_end`` after each epoch, which advances the reader to the next
    epoch's (seeded) order; training epoch ``e`` reads the reader's epoch ``e`` (the extra
    call Keras makes before the first epoch is ignored). Keras's own ``fit(shuffle=True)``
    only permutes the order in which batches are requested, with Python's ``random``; pass
    ``shuffle=False`` to ``fit`` to keep the batch order fully determined by the reader's seed.

    Args:
        reader: The reader of one split.
        add_channel_axis: Append a channel axis, ``(batch, n_samples)`` becoming
            ``(batch, n_samples, 1)``, as ``Conv1D`` and recurrent layers expect.
        transform: Applied to each input batch before the channel axis is added, e.g. a
            normalisation; its result is cast to float32.
        before_read: Called before every batch is read from disk, e.g. to note when Keras
            starts a validation pass: it reads batches to infer their shapes before the pass
            signals its start to callbacks.

    Returns:
        A ``keras.utils.PyDataset`` yielding ``(x float32, y int64)`` batches.
    """
    return _ReaderDataset(reader, add_channel_axis, transform, before_read)
