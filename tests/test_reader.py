"""Tests of event sources (hpsearch.data._source), the batch reader and its Keras adapter.

Every file is written here with h5py directly (no dependency on the simulator). Row ``i`` of
the inputs starts with the value ``i``, so a batch can be traced back to its events.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from h5files import N_SAMPLES, check_error, events_of, rows, write, write_chunked_shards
from hpsearch.data import (
    BatchReader,
    DatasetInfo,
    EventSource,
    H5Source,
    Layout,
    MemorySource,
    clear_memory_cache,
    inspect_dataset,
    iterate,
    load_into_memory,
    make_split,
    memory_source,
)
from hpsearch.data._reader import THREAD_PREFIX
from hpsearch.errors import DataError


def source_of(path: Path | list[Path], layout: Layout | None = None, **kwargs: Any) -> H5Source:
    """An H5Source of a file (or shards), inspected without the finite scan."""
    layout = layout or Layout()
    return H5Source(inspect_dataset(path, layout, scan_finite=False, **kwargs), layout)


def reader_of(path: Path, blocks: Any, batch_size: int, **kwargs: Any) -> BatchReader:
    return BatchReader(source_of(path), blocks, batch_size, **kwargs)


def all_batches(reader: BatchReader, epochs: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every batch of ``epochs`` epochs, from the reader's current epoch on."""
    out = []
    for _ in range(epochs):
        out.extend(iterate(reader))
        reader.on_epoch_end()
    return out


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.fixture(autouse=True)
def _fresh_memory_cache() -> Any:
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write(tmp_path / "d.h5", 1000)


def _check_rows(x: np.ndarray, y: np.ndarray, path: Path) -> np.ndarray:
    """Check the batch equals the file's rows and return the event indices it holds."""
    index: np.ndarray = np.rint(x[:, 0]).astype(np.int64)
    with h5py.File(path, "r") as f:
        order = np.argsort(index)
        assert np.array_equal(x[order], f["waveforms"][np.sort(index)])
        assert np.array_equal(y[order], f["labels"][np.sort(index)])
    return index


# --------------------------------------------------------------------------------------------
# BatchReader: the contract
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_bytes", [None, 40 * 150])  # one buffer; buffers of ~70 events
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 32, 64, 1000])
def test_reader_covers_split_once_per_epoch(
    data_file: Path, shuffle: bool, batch_size: int, buffer_bytes: int | None
) -> None:
    split = make_split(1000, seed=3)
    extra = {} if buffer_bytes is None else {"buffer_bytes": buffer_bytes}
    with reader_of(data_file, split.train, batch_size, shuffle=shuffle, seed=5, **extra) as r:
        assert r.n_events == split.n_events("train") == 700
        assert len(r) == -(-700 // batch_size)
        if buffer_bytes is not None:
            assert r.buffer_events < 100  # many buffers, so batches span two of them
        for _ in range(2):
            seen = []
            for i in range(len(r)):
                x, y = r.batch(i)
                assert x.dtype == np.float32
                assert y.dtype == np.int64
                assert x.shape == (len(y), N_SAMPLES)
                assert len(y) == (batch_size if i < len(r) - 1 else 700 - batch_size * i)
                seen.append(_check_rows(x, y, data_file))
            events = np.concatenate(seen)
            assert np.array_equal(np.sort(events), events_of(np.sort(split.train, axis=0)))
            if not shuffle:
                assert np.array_equal(events, np.sort(events))
            r.on_epoch_end()


def test_reader_reshuffles_deterministically(data_file: Path) -> None:
    split = make_split(1000, seed=3)

    def epochs(seed: int, n: int = 3) -> list[np.ndarray]:
        reader = reader_of(data_file, split.train, 32, shuffle=True, seed=seed)
        return [np.concatenate([x[:, 0] for x, _ in iterate(r)]) for r in _epochs(reader, n)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], other[0])


def _epochs(reader: BatchReader, n: int) -> Any:
    for _ in range(n):
        yield reader
        reader.on_epoch_end()


@pytest.mark.parametrize("buffer_bytes", [None, 40 * 150])
def test_reader_batches_are_random_access(data_file: Path, buffer_bytes: int | None) -> None:
    split = make_split(1000, seed=3)
    extra = {} if buffer_bytes is None else {"buffer_bytes": buffer_bytes}
    r = reader_of(data_file, split.train, 32, shuffle=True, seed=1, **extra)
    forward = [r.batch(i)[0] for i in range(len(r))]
    backward = [r.batch(i)[0] for i in reversed(range(len(r)))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert np.array_equal(a, b)
    jumbled = np.random.default_rng(0).permutation(len(r))
    for i in jumbled:
        assert np.array_equal(r.batch(int(i))[0], forward[i])
    assert np.array_equal(r.batch(-1)[0], forward[-1])
    with pytest.raises(IndexError):
        r.batch(len(r))
    r.set_epoch(4)
    a = r.batch(0)[0]
    r.set_epoch(0)
    assert np.array_equal(r.batch(0)[0], forward[0])
    r.set_epoch(4)
    assert np.array_equal(r.batch(0)[0], a)
    r.close()


def test_unshuffled_reader_is_the_same_every_epoch(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = reader_of(data_file, split.val, 16, shuffle=False, seed=1)
    first = [x for x, _ in iterate(r)]
    r.on_epoch_end()
    assert all(np.array_equal(a, b) for a, b in zip(first, [x for x, _ in iterate(r)], strict=True))


@pytest.mark.parametrize("buffer_fraction", [None, 8])
def test_shuffled_batches_mix_classes_of_a_sorted_file(
    tmp_path: Path, buffer_fraction: int | None
) -> None:
    """Mixed batches from a file sorted by class, whether a buffer holds it all or 1/8 of it."""
    n = 4096
    y = (np.arange(n) * 4 // n).astype(np.int8)  # sorted: 1024 of class 0, then class 1, ...
    path = write(tmp_path / "sorted.h5", x=rows(n), y=y, attrs={}, chunks=(16, N_SAMPLES))
    split = make_split(n, seed=0)
    extra = {}
    if buffer_fraction is not None:
        extra["buffer_bytes"] = 2 * n * 40 // buffer_fraction  # 40 bytes per event served
    r = reader_of(path, split.train, 64, shuffle=True, seed=0, drop_remainder=True, **extra)
    if buffer_fraction is not None:
        assert r.buffer_events <= n // buffer_fraction
    classes = []
    for x, labels in iterate(r):
        classes.append(len(np.unique(labels)))
        index = np.rint(x[:, 0]).astype(np.int64)
        # Events of a batch come from several places of the file...
        assert len(np.unique(index // 32)) >= 4
        # ...and are not in file order inside the batch.
        assert not np.array_equal(index, np.sort(index))
    assert min(classes) >= 2
    assert np.mean(classes) >= 3
    # Without shuffling, the same file gives batches of one class (the reason for mixing).
    plain = reader_of(path, split.train, 64, shuffle=False, seed=0)
    assert np.mean([len(np.unique(labels)) for _, labels in iterate(plain)]) < 1.5


def test_max_events_takes_the_first_blocks(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    for shuffle in (False, True):
        r = reader_of(data_file, split.train, 10, shuffle=shuffle, seed=0, max_events=45)
        assert r.n_events == 45
        assert len(r) == 5
        events = np.concatenate([np.rint(x[:, 0]) for x, _ in iterate(r)]).astype(np.int64)
        assert np.array_equal(np.sort(events), np.sort(events_of(split.train)[:45]))
    whole = reader_of(data_file, split.train, 10, shuffle=False, seed=0, max_events=10**6)
    assert whole.n_events == 700


def test_drop_remainder(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = reader_of(data_file, split.train, 64, shuffle=True, seed=0, drop_remainder=True)
    assert len(r) == 700 // 64
    assert all(len(y) == 64 for _, y in iterate(r))
    with pytest.raises(ValueError, match="batch"):
        reader_of(data_file, split.val, 1000, shuffle=True, seed=0, drop_remainder=True)


def test_reader_rejects_bad_arguments(data_file: Path) -> None:
    source = source_of(data_file)
    good = np.array([[0, 10]])
    with pytest.raises(ValueError, match="batch_size"):
        BatchReader(source, good, 0, shuffle=False, seed=0)
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        BatchReader(source, np.arange(4), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="start < stop"):
        BatchReader(source, np.array([[5, 5]]), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="overlap"):
        BatchReader(source, np.array([[0, 10], [5, 15]]), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="only 1000 events"):
        BatchReader(source, np.array([[990, 1010]]), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="buffer_bytes"):
        BatchReader(source, good, 2, shuffle=False, seed=0, buffer_bytes=0)
    with pytest.raises(TypeError, match="EventSource"):
        BatchReader(data_file, good, 2, shuffle=False, seed=0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The same batches from every source
# --------------------------------------------------------------------------------------------


def _dataset(tmp_path: Path, kind: str) -> tuple[list[Path], DatasetInfo]:
    """Files of one of several kinds of data set, and their inspection."""
    n = 1500
    y: np.ndarray
    target = "classification"
    if kind == "regression":
        y, target = np.random.default_rng(0).normal(size=(n, 3)), "regression"
    elif kind == "scalar regression":
        y, target = np.arange(n, dtype=np.float64) / 7, "regression"
    else:
        y = (np.arange(n) % 3).astype(np.int8)
    sizes = [600, 900] if kind == "2 shards" else [n]
    paths = write_chunked_shards(tmp_path, sizes, y=y, chunks=(50, N_SAMPLES))
    info = inspect_dataset(paths if len(paths) > 1 else paths[0], target=target)  # type: ignore[arg-type]
    return paths, info


@pytest.mark.parametrize("kind", ["classification", "regression", "scalar regression", "2 shards"])
def test_h5_and_memory_sources_give_identical_batches(tmp_path: Path, kind: str) -> None:
    _, info = _dataset(tmp_path, kind)
    layout = Layout()
    h5 = H5Source(info, layout)
    memory = memory_source(info, layout)
    assert (h5.chunk_rows, memory.chunk_rows) == (50, 50)
    assert np.array_equal(h5.bounds, memory.bounds)
    expected_y = np.float32 if info.target == "regression" else np.int64
    split = make_split(info.n_events, seed=4)
    for shuffle in (True, False):
        # ~13 buffers of ~100 events: batches of 48 often span two of them.
        kwargs: dict[str, Any] = dict(shuffle=shuffle, seed=8, buffer_bytes=2 * 100 * 60)
        streamed = BatchReader(h5, split.train, 48, **kwargs)
        in_memory = BatchReader(memory, split.train, 48, **kwargs)
        assert streamed.buffer_events < 200
        got = all_batches(streamed, epochs=2)
        want = all_batches(in_memory, epochs=2)
        assert len(got) == len(want) == 2 * len(streamed)
        for (xa, ya), (xb, yb) in zip(got, want, strict=True):
            assert xa.dtype == np.float32 and ya.dtype == expected_y
            assert ya.shape == (len(xa), *info.target_shape)
            assert np.array_equal(xa, xb)
            assert np.array_equal(ya, yb)
        # The content is right too: each row is the data set's row it claims to be.
        x_all = np.concatenate([x for x, _ in got])
        y_all = np.concatenate([y for _, y in got])
        index = np.rint(x_all[:, 0]).astype(np.int64)
        assert np.array_equal(y_all, memory.y[index])
        assert np.array_equal(
            np.sort(index[: streamed.n_events]), events_of(np.sort(split.train, axis=0))
        )
        streamed.close()


def test_prefetch_does_not_change_batches(tmp_path: Path) -> None:
    _, info = _dataset(tmp_path, "2 shards")
    split = make_split(info.n_events, seed=1)
    kwargs: dict[str, Any] = dict(shuffle=True, seed=3, buffer_bytes=2 * 200 * 40)
    ahead = BatchReader(H5Source(info, Layout()), split.train, 32, prefetch=True, **kwargs)
    inline = BatchReader(H5Source(info, Layout()), split.train, 32, prefetch=False, **kwargs)
    for (xa, ya), (xb, yb) in zip(all_batches(ahead, 3), all_batches(inline, 3), strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    ahead.close()


def test_windows_are_chunk_aligned_and_read_in_one_call_each(tmp_path: Path) -> None:
    """A buffer is read with one call per window, and a window never crosses a chunk row
    boundary it does not have to (windows are whole multiples of the chunk rows)."""
    paths = write_chunked_shards(tmp_path, [3000], chunks=(64, N_SAMPLES))
    source = source_of(paths[0])
    calls: list[np.ndarray] = []
    read = source.read_into

    def spy(ranges: Any, x: Any, y: Any, row: int = 0) -> int:
        calls.append(np.asarray(ranges))
        return read(ranges, x, y, row)

    source.read_into = spy  # type: ignore[method-assign]
    split = make_split(3000, seed=0)
    r = BatchReader(
        source, split.train, 32, shuffle=True, seed=0, buffer_bytes=2 * 1000 * 40, prefetch=False
    )
    length = r.window_events
    assert length % 64 == 0 and length >= 64
    batches = all_batches(r)
    n_windows = len({int(c[0, 0]) // length for c in calls})
    assert len(calls) == n_windows  # every window read once, in one call
    for ranges in calls:
        first_cells = ranges[:, 0] // length
        last_cells = (ranges[:, 1] - 1) // length
        assert (
            len(set(first_cells) | set(last_cells)) == 1
        )  # all ranges of one call lie in one chunk-aligned window
    assert sum(len(y) for _, y in batches) == r.n_events == r.events_read


def test_h5_source_reads_across_shard_boundaries(tmp_path: Path) -> None:
    paths = write_chunked_shards(tmp_path, [100, 1, 250], chunks=(1, N_SAMPLES))
    source = source_of(paths)
    assert source.bounds.tolist() == [0, 100, 101, 351]
    x, y = source.read(90, 120)
    assert np.array_equal(x, rows(351)[90:120])
    assert np.array_equal(y, np.arange(90, 120) % 3)
    x, y = source.empty(40)
    assert source.read_into(np.array([[300, 310], [95, 105], [0, 5]]), x, y, row=10) == 25
    assert np.array_equal(x[10:35, 0], np.r_[300:310, 95:105, 0:5])
    with pytest.raises(ValueError, match="within"):
        source.read(340, 352)
    with pytest.raises(ValueError, match="do not fit"):
        source.read_into(np.array([[0, 50]]), x, y)
    with pytest.raises(ValueError, match="float32"):
        source.read_into(np.array([[0, 5]]), x.astype(np.float64), y)
    source.close()


def _layout_file(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A 600-event file stored as ``kind``; returns what HDF5 itself reads back."""
    n = 600
    x = rows(n)
    y: np.ndarray = (np.arange(n) % 3).astype(np.int8)
    options: dict[str, Any] = {"chunks": (64, N_SAMPLES)}
    if kind == "contiguous":
        options = {}
    elif kind == "compressed":
        options["compression"] = "gzip"
    elif kind == "float64 inputs":
        x = x.astype(np.float64)
    elif kind == "bool labels":
        y = np.arange(n) % 2 == 1
    elif kind == "regression":
        y = np.random.default_rng(1).normal(size=(n, 2))
    with h5py.File(path, "w", userblock_size=512 if kind == "userblock" else 0) as f:
        if kind == "unwritten chunks":
            data = f.create_dataset("waveforms", shape=x.shape, dtype=np.float32, **options)
            data[:64] = x[:64]
            data[256:320] = x[256:320]
        else:
            f.create_dataset("waveforms", data=x, **options)
        f.create_dataset("labels", data=y)
    with h5py.File(path, "r") as f:
        return f["waveforms"][()].astype(np.float32), f["labels"][()]


@pytest.mark.parametrize(
    "kind",
    [
        "chunked",
        "contiguous",
        "userblock",
        "unwritten chunks",
        "regression",
        "compressed",
        "float64 inputs",
        "bool labels",
    ],
)
def test_h5_source_reads_what_hdf5_reads(tmp_path: Path, kind: str) -> None:
    """Every storage layout, dense ranges (read by span) and sparse ones (read one by one)."""
    x_file, y_file = _layout_file(tmp_path / "f.h5", kind)
    target = "regression" if kind == "regression" else "classification"
    info = DatasetInfo(
        tmp_path / "f.h5", 600, (N_SAMPLES,), "float32", "int8", 3, target=target,
        target_shape=y_file.shape[1:],
    )  # fmt: skip
    ranges = np.array([[0, 5], [7, 40], [41, 90], [100, 130], [250, 270], [500, 600], [64, 65]])
    index = np.concatenate([np.arange(a, b) for a, b in ranges])
    source = H5Source(info, Layout())
    x, y = source.empty(len(index) + 3)
    assert source.read_into(ranges, x, y, row=3) == len(index)
    assert np.array_equal(x[3:], x_file[index])
    assert np.array_equal(y[3:], y_file[index].astype(y.dtype))
    source.close()


# --------------------------------------------------------------------------------------------
# Memory: bounded when streaming, loaded once when in memory
# --------------------------------------------------------------------------------------------


def test_streaming_memory_is_bounded_by_the_buffer(tmp_path: Path) -> None:
    n, n_samples = 9000, 256
    path = write(tmp_path / "big.h5", x=rows(n, n_samples), chunks=(64, n_samples))  # 9 MB
    buffer_bytes = 2**20  # the file is 8x larger
    split = make_split(n, seed=0)
    r = reader_of(path, split.train, 32, shuffle=True, seed=0, buffer_bytes=buffer_bytes)
    assert r.source.event_bytes * n >= 8 * buffer_bytes
    # No attribute holds event data: only block boundaries and windows.
    held = [v for v in vars(r).values() if isinstance(v, np.ndarray)]
    assert all(v.dtype.kind in "iu" for v in held)
    r.batch(0)  # warm up: open the file, lay out the windows
    tracemalloc.start()
    try:
        for _ in range(2):
            for x, _ in iterate(r):
                assert x.shape[1] == n_samples
            r.on_epoch_end()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * buffer_bytes, peak
    assert r.events_read >= 2 * split.n_events("train")
    r.close()


def test_load_into_memory_reads_every_shard(tmp_path: Path) -> None:
    _, info = _dataset(tmp_path, "2 shards")
    source = load_into_memory(info, Layout())
    assert isinstance(source, MemorySource)
    assert np.array_equal(source.x, rows(1500))
    assert np.array_equal(source.y, np.arange(1500) % 3)
    assert source.y.dtype == np.int64
    assert source.bounds.tolist() == [0, 600, 1500]
    assert source.chunk_rows == 50
    x, y = source.read(590, 610)
    assert np.array_equal(x, rows(1500)[590:610])
    assert np.array_equal(y, np.arange(590, 610) % 3)


def test_memory_source_is_loaded_once_per_process(tmp_path: Path) -> None:
    paths, info = _dataset(tmp_path, "2 shards")
    first = memory_source(info, Layout())
    assert memory_source(info, Layout()) is first
    # Pickled, it is a reference to the files: small, and the same object in this process.
    blob = pickle.dumps(first)
    assert len(blob) < 10_000
    assert pickle.loads(blob) is first
    # A changed file is loaded again.
    x = rows(900)[::-1].copy()
    time.sleep(0.01)
    write(paths[1], x=x, y=(np.arange(900) % 3).astype(np.int8), attrs={}, chunks=(50, N_SAMPLES))
    again = memory_source(info, Layout())
    assert again is not first
    assert np.array_equal(again.x[600:], x)
    clear_memory_cache()
    assert memory_source(info, Layout()) is not again


def test_memory_source_from_arrays(tmp_path: Path) -> None:
    x = rows(100)
    source = MemorySource(x, np.arange(100) % 2)
    assert source.target == "classification" and source.y.dtype == np.int64
    regression = MemorySource(x, np.ones((100, 2)))
    assert regression.target == "regression" and regression.target_shape == (2,)
    assert regression.event_bytes == 4 * N_SAMPLES + 8
    assert source.x is x  # float32 arrays are served as they are, not copied
    x = x.copy()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        MemorySource(x, np.arange(100) % 2)
    with pytest.raises(ValueError, match="same n"):
        MemorySource(rows(10), np.arange(9))
    # Pickled, a source made from arrays carries them.
    copy = pickle.loads(pickle.dumps(source))
    assert np.array_equal(copy.x, source.x)


# --------------------------------------------------------------------------------------------
# Files that go wrong
# --------------------------------------------------------------------------------------------


def test_reader_opens_lazily_and_reports_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "later.h5"
    info = DatasetInfo(path, 10, (N_SAMPLES,), "float32", "int8", 3)
    r = BatchReader(H5Source(info, Layout()), np.array([[0, 10]]), 4, shuffle=False, seed=0)
    with pytest.raises(DataError) as caught:
        r.batch(0)
    check_error(caught.value, path, "not found")
    write(path, 5)
    with pytest.raises(DataError) as caught:
        r.batch(0)
    check_error(caught.value, path, "waveforms", "event 9", "only 5 events")
    write(path, 20, y_key="y")
    with pytest.raises(DataError) as caught:
        r.batch(0)
    check_error(caught.value, path, "labels", "'y'")
    write(path, 20, x=rows(20, 4))
    with pytest.raises(DataError) as caught:
        r.batch(0)
    check_error(caught.value, path, "shape (4,)")
    write(path, 20)
    assert len(r.batch(0)[1]) == 4
    r.close()


@pytest.mark.parametrize("prefetch", [True, False])
def test_reader_catches_nan_with_event_index(tmp_path: Path, prefetch: bool) -> None:
    x = rows(1000)
    x[613, 2] = np.nan
    x[614, 0] = np.inf
    path = write(tmp_path / "nan.h5", x=x)
    blocks = np.array([[0, 1000]])
    for shuffle in (False, True):
        r = reader_of(
            path, blocks, 32, shuffle=shuffle, seed=0, prefetch=prefetch, buffer_bytes=2 * 200 * 40
        )
        caught = []
        for i in range(len(r)):
            try:
                r.batch(i)
            except DataError as err:
                check_error(err, path, "waveforms", "NaN")
                caught.append(str(err))
        assert 1 <= len(caught) < len(r)  # only the batches of the buffer holding the event
        assert any("event 613" in c or "event 614" in c for c in caught)
        r.close()
    r = reader_of(path, np.array([[614, 620]]), 32, shuffle=False, seed=0)
    with pytest.raises(DataError, match="event 614"):
        r.batch(0)


def test_nan_in_a_shard_names_the_shard_and_its_event(tmp_path: Path) -> None:
    paths = write_chunked_shards(tmp_path, [300, 400])
    with h5py.File(paths[1], "r+") as f:
        f["waveforms"][123, 4] = np.nan  # event 423 of the data set
    source = source_of(paths)
    r = BatchReader(source, np.array([[0, 700]]), 50, shuffle=True, seed=0)
    with pytest.raises(DataError) as caught:
        all_batches(r)
    check_error(caught.value, paths[1], "waveforms", "event 123", "event 423 of the data set")
    assert str(paths[0]) not in str(caught.value)
    with pytest.raises(DataError) as caught:
        memory_source(source.info, Layout())
    check_error(caught.value, paths[1], "event 123")
    r.close()


# --------------------------------------------------------------------------------------------
# Threads and processes
# --------------------------------------------------------------------------------------------


def test_prefetch_thread_reads_ahead_and_ends_on_close(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    before = set(reader_threads())
    r = reader_of(data_file, split.train, 32, shuffle=True, seed=0, buffer_bytes=2 * 200 * 40)
    r.batch(0)
    started = set(reader_threads()) - before
    assert len(started) == 1
    deadline = time.monotonic() + 10
    while r.events_read <= r.buffer_events and time.monotonic() < deadline:
        time.sleep(0.01)  # the next buffer arrives without being asked for
    assert r.events_read > r.buffer_events
    r.close()
    assert not any(t.is_alive() for t in started)
    # Still usable after close, with a new thread that close ends again.
    assert len(r.batch(1)[1]) == 32
    again = set(reader_threads()) - before
    assert len(again) == 1
    r.close()
    assert not any(t.is_alive() for t in again)


def test_reader_works_after_pickling(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = reader_of(data_file, split.train, 32, shuffle=True, seed=9)
    r.on_epoch_end()
    expected = r.batch(3)  # the file is open, a thread and buffers exist now
    copy = pickle.loads(pickle.dumps(r))
    assert copy._buffers == {} and copy._executor is None
    assert isinstance(copy.source, H5Source) and not copy.source._open
    got = copy.batch(3)
    assert np.array_equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    r.close()
    assert not r.source._open  # type: ignore[attr-defined]
    assert np.array_equal(r.batch(3)[0], expected[0])  # reopens after close
    r.close()
    copy.close()


def test_reader_works_in_another_process(data_file: Path, tmp_path: Path) -> None:
    split = make_split(1000, seed=3)
    r = reader_of(data_file, split.val, 16, shuffle=True, seed=2)
    r.batch(0)
    (tmp_path / "reader.pkl").write_bytes(pickle.dumps(r))
    script = (
        "import pickle, sys, numpy as np\n"
        "r = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "x, y = r.batch(2)\n"
        "r.close()\n"
        "np.save(sys.argv[2], x)\n"
    )
    out = tmp_path / "x.npy"
    # Another working directory: the source carries absolute paths.
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "reader.pkl"), str(out)],
        check=True,
        cwd="/",
        timeout=60,
    )
    assert np.array_equal(np.load(out), r.batch(2)[0])
    r.close()


def _read_in_child(reader: BatchReader, queue: Any) -> None:
    x, _ = reader.batch(5)
    reader.close()
    queue.put(x)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_reader_works_in_a_forked_child(data_file: Path) -> None:
    """A child forked while the parent's reader has open files and a prefetch thread."""
    split = make_split(1000, seed=3)
    r = reader_of(data_file, split.train, 32, shuffle=True, seed=4, buffer_bytes=2 * 200 * 40)
    r.batch(0)
    expected = r.batch(5)[0]
    r.set_epoch(0)  # keeps epoch 0's buffers, thread and handles alive in the parent
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(r, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(got, expected)
    assert np.array_equal(r.batch(5)[0], expected)  # the parent's reader is unharmed
    r.close()


def test_reader_with_relative_path_and_custom_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(x_key="data/x", y_key="is_signal")
    write(
        tmp_path / "u.h5",
        x=rows(100).astype(np.float64),
        y=np.arange(100) % 2 == 1,
        x_key=layout.x_key,
        y_key=layout.y_key,
    )
    monkeypatch.chdir(tmp_path)
    info = DatasetInfo(Path("u.h5"), 100, (N_SAMPLES,), "float64", "bool", 2)
    source = H5Source(info, layout)
    assert source.paths == (tmp_path.resolve() / "u.h5",)
    r = BatchReader(source, np.array([[10, 30]]), 8, shuffle=False, seed=0)
    x, y = r.batch(0)
    assert x.dtype == np.float32
    assert y.dtype == np.int64
    assert np.array_equal(x[:, 0], np.arange(10, 18))
    assert np.array_equal(y, np.arange(10, 18) % 2)
    r.close()


def test_sources_are_event_sources(data_file: Path) -> None:
    assert isinstance(source_of(data_file), EventSource)
    assert isinstance(MemorySource(rows(5), np.arange(5)), EventSource)
    assert os.path.isabs(str(source_of(data_file).paths[0]))


# --------------------------------------------------------------------------------------------
# Keras
# --------------------------------------------------------------------------------------------


def test_importing_data_does_not_import_keras() -> None:
    code = (
        "import sys, hpsearch.data, hpsearch.data._source, hpsearch.data._reader\n"
        "from hpsearch.data import *\n"
        "bad = [m for m in ('keras', 'tensorflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_keras_adapter_fits_a_model(data_file: Path) -> None:
    keras = pytest.importorskip("keras")
    from hpsearch.data import keras_dataset

    split = make_split(1000, seed=3)
    train = reader_of(data_file, split.train, 64, shuffle=True, seed=0)
    val = reader_of(data_file, split.val, 64, shuffle=False, seed=0)
    ds = keras_dataset(train)
    assert isinstance(ds, keras.utils.PyDataset)
    assert len(ds) == len(train)
    x, y = ds[0]
    assert x.shape == (64, N_SAMPLES, 1)
    assert x.dtype == np.float32
    assert y.shape == (64,)
    assert np.issubdtype(y.dtype, np.integer)

    scaled = keras_dataset(train, add_channel_axis=False, transform=lambda a: a / 1000.0)
    xs, _ = scaled[0]
    assert xs.shape == (64, N_SAMPLES)
    assert xs.dtype == np.float32
    assert np.allclose(xs, x[..., 0] / 1000.0)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((N_SAMPLES, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(
        keras_dataset(train, transform=lambda a: a / 1000.0),
        validation_data=keras_dataset(val, transform=lambda a: a / 1000.0),
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["val_loss"]).all()
    # Keras called on_epoch_end after each epoch (its extra call before the first is ignored),
    # so training epochs 0 and 1 read the reader's epochs 0 and 1.
    assert train.epoch == 2
    train.close()
    val.close()


def test_keras_adapter_passes_regression_targets_through(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    from hpsearch.data import keras_dataset

    _, info = _dataset(tmp_path, "regression")
    reader = BatchReader(
        memory_source(info, Layout()), np.array([[0, 1500]]), 32, shuffle=True, seed=0
    )
    ds = keras_dataset(reader, target_transform=lambda y: (y * 2).astype(np.float32))
    x, y = ds[3]
    raw = reader.batch(3)[1]
    assert y.dtype == np.float32 and y.shape == (32, 3)
    assert np.array_equal(y, raw * 2)
    assert x.shape == (32, N_SAMPLES, 1)
