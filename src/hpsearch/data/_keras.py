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

    ``workers=1`` and no multiprocessing. Keras 3 then iterates the dataset through
    ``tf.data.Dataset.from_generator(...).prefetch(AUTOTUNE)``: ``__getitem__`` runs in a
    ``tf.data`` thread, ahead of the training step, in index order, so batch production
    already overlaps the step; the reader's own thread reads the next buffer from disk
    meanwhile. Keras's thread pool (``workers > 1``) would add nothing but contention: a batch
    is cut from a buffer in memory (microseconds) and the reader serialises its calls
    (measured: no faster with 2 or 4 workers for the tiny Conv1D of
    ``benchmarks/data_serving.py``). A process pool would also fork a process holding
    TensorFlow and HDF5 handles.
    """

    def __init__(
        self,
        reader: BatchReader,
        add_channel_axis: bool,
        transform: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]] | None,
        before_read: Callable[[], None] | None = None,
        target_transform: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.reader = reader
        self.add_channel_axis = add_channel_axis
        self.transform = transform
        self.target_transform = target_transform
        self.before_read = before_read
        self._in_epoch = False

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
        if self.before_read is not None:
            self.before_read()
        x, y = self.reader.batch(index)
        if self.transform is not None:
            x = np.asarray(self.transform(x), dtype=np.float32)
        if self.target_transform is not None:
            y = np.asarray(self.target_transform(y))
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
    target_transform: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
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
        before_read: Called before every batch is read, e.g. to note when Keras starts a
            validation pass: it reads batches to infer their shapes before the pass signals
            its start to callbacks.
        target_transform: Applied to each target batch (e.g. standardised regression
            targets); its result keeps the dtype it has.

    Returns:
        A ``keras.utils.PyDataset`` yielding ``(x, y)`` batches: x float32; y as the reader
        serves it (int64 class labels, or float32 ``(batch, *target_shape)`` values).
    """
    return _ReaderDataset(reader, add_channel_axis, transform, before_read, target_transform)
