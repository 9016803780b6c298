"""Reading training data from HDF5 files: checks, splits and batch readers.

Importing this package does not import Keras or TensorFlow (they take seconds, and the CLI, the
spec checks and the report never need them): :func:`keras_dataset` imports its module, and with
it Keras, when it is first called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from hpsearch.data._files import DatasetInfo, Layout, Shard, TargetKind, inspect_dataset
from hpsearch.data._reader import BatchReader, iterate
from hpsearch.data._source import (
    EventSource,
    H5Source,
    MemorySource,
    clear_memory_cache,
    load_into_memory,
    memory_source,
)
from hpsearch.data._split import (
    Split,
    make_split,
    split_by_groups,
    split_from_files,
    split_from_indices,
    split_from_labels,
)

if TYPE_CHECKING:
    import keras

__all__ = [
    "BatchReader",
    "DatasetInfo",
    "EventSource",
    "H5Source",
    "Layout",
    "MemorySource",
    "Shard",
    "Split",
    "TargetKind",
    "clear_memory_cache",
    "inspect_dataset",
    "iterate",
    "keras_dataset",
    "load_into_memory",
    "make_split",
    "memory_source",
    "split_by_groups",
    "split_from_files",
    "split_from_indices",
    "split_from_labels",
]


def keras_dataset(
    reader: BatchReader,
    *,
    add_channel_axis: bool = True,
    transform: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]] | None = None,
    target_transform: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
    before_read: Callable[[], None] | None = None,
) -> keras.utils.PyDataset:
    """Wrap ``reader`` as a ``keras.utils.PyDataset`` for ``model.fit`` and ``model.evaluate``.

    Keras is imported here, on first call, not when :mod:`hpsearch.data` is imported. Details
    (epochs, ``fit(shuffle=...)``) are in :func:`hpsearch.data._keras.keras_dataset`.

    Args:
        reader: The reader of one split.
        add_channel_axis: Append a channel axis, ``(batch, n)`` becoming ``(batch, n, 1)``.
        transform: Applied to each input batch before the channel axis; result cast to float32.
        target_transform: Applied to each target batch (standardised regression targets).
        before_read: Called before each batch is read (to time passes, say).

    Returns:
        A PyDataset that forwards ``__len__``, ``__getitem__`` and ``on_epoch_end`` to ``reader``.
    """
    from hpsearch.data._keras import keras_dataset as adapt

    return adapt(
        reader,
        add_channel_axis=add_channel_axis,
        transform=transform,
        target_transform=target_transform,
        before_read=before_read,
    )
