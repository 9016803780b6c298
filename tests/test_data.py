"""Tests of hpsearch.data: file checks, splits, the batch reader and the Keras adapter.

Every file is written here with h5py directly (no dependency on the simulator). Row ``i`` of
the inputs starts with the value ``i``, so a batch can be traced back to its events.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hpsearch.data import (
    BatchReader,
    DatasetInfo,
    Layout,
    Split,
    inspect_dataset,
    iterate,
    make_split,
)
from hpsearch.data import _files as _hdf5
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


# --------------------------------------------------------------------------------------------
# inspect_dataset
# --------------------------------------------------------------------------------------------


def test_inspect_describes_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path / "d.h5", 100)
    info = inspect_dataset(path)
    assert isinstance(info, DatasetInfo)
    assert info.path == path.resolve()
    assert info.path.is_absolute()
    assert info.n_events == 100
    assert info.event_shape == (N_SAMPLES,)
    assert info.x_dtype == "float32"
    assert info.y_dtype == "int8"
    assert info.n_classes == 3
    assert info.attrs["task"] == "test"
    assert info.attrs["seed"] == 1
    assert isinstance(info.attrs["seed"], int)
    assert json.loads(info.attrs["class_names"]) == ["a", "b", "c"]


def test_inspect_counts_classes_without_class_names(tmp_path: Path) -> None:
    y = np.array([0, 1, 4, 2] * 5, dtype=np.int16)
    path = write(tmp_path / "d.h5", x=rows(20), y=y, attrs={})
    assert inspect_dataset(path).n_classes == 5


def test_inspect_accepts_bool_labels_float64_and_a_custom_layout(tmp_path: Path) -> None:
    layout = Layout(x_key="data/x", y_key="is_signal")
    y = np.arange(50) % 2 == 0
    path = write(
        tmp_path / "u.h5",
        x=rows(50).astype(np.float64),
        y=y,
        attrs={},
        x_key=layout.x_key,
        y_key=layout.y_key,
    )
    info = inspect_dataset(path, layout)
    assert info.n_classes == 2
    assert info.x_dtype == "float64"


def test_inspect_accepts_class_names_as_string_array(tmp_path: Path) -> None:
    path = write(tmp_path / "d.h5", 30, attrs={"class_names": np.array([b"g", b"p", b"e"])})
    assert inspect_dataset(path).n_classes == 3


def test_missing_file_with_simulate_hint(tmp_path: Path) -> None:
    path = tmp_path / "nope.h5"
    hint = "run `hpsearch simulate xgamma --out nope.h5`"
    with pytest.raises(DataError) as info:
        inspect_dataset(path, simulate_hint=hint)
    check_error(info.value, path, "waveforms", "not found", hint)
    assert info.value.fix == hint


def test_missing_file_without_hint_points_at_data_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.h5"
    with pytest.raises(DataError) as info:
        inspect_dataset(path, Layout(x_key="traces"))
    check_error(info.value, path, "traces", "not found", "data.path")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        inspect_dataset(tmp_path)
    check_error(info.value, tmp_path, "waveforms", "directory")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "data.h5"
    path.write_text("waveform,label\n1.0,0\n")
    with pytest.raises(DataError) as info:
        inspect_dataset(path)
    check_error(info.value, path, "waveforms", "not an HDF5 file")


def _build(tmp_path: Path, case: str) -> tuple[Path, Layout]:
    path = tmp_path / f"{case}.h5"
    n = 40
    if case == "x_missing":
        write(path, n, x_key="traces")
        return path, Layout()
    if case == "x_group":
        with h5py.File(path, "w") as f:
            f.create_group("waveforms")
            f["labels"] = np.zeros(n, np.int8)
        return path, Layout()
    if case == "y_missing":
        write(path, n, y_key="target")
        return path, Layout()
    if case == "x_int":
        write(path, x=(rows(n) * 10).astype(np.int16))
    elif case == "y_float":
        write(path, y=np.zeros(n, np.float32), x=rows(n))
    elif case == "x_1d":
        write(path, x=np.zeros(n, np.float32))
    elif case == "x_empty_event":
        write(path, x=np.zeros((n, 0), np.float32))
    elif case == "y_one_hot":
        write(path, x=rows(n), y=np.eye(3, dtype=np.int8)[np.arange(n) % 3])
    elif case == "length":
        write(path, x=rows(n), y=np.zeros(n - 1, np.int8))
    elif case == "too_few":
        write(path, x=rows(2), y=np.zeros(2, np.int8))
    elif case == "label_range":
        y = np.zeros(n, np.int8)
        y[17] = 3
        write(path, x=rows(n), y=y)
    elif case == "label_negative":
        y = np.ones(n, np.int8)
        y[23] = -1
        write(path, x=rows(n), y=y, attrs={})
    elif case == "class_names":
        write(path, n, attrs={"class_names": "gamma, proton"})
    elif case == "nan":
        x = rows(n)
        x[29, 3] = np.nan
        write(path, x=x)
    elif case == "inf":
        x = rows(n)
        x[31, 0] = -np.inf
        write(path, x=x)
    else:  # pragma: no cover
        raise AssertionError(case)
    return path, Layout()


# (case, texts the message must hold: the dataset key and what was found)
ERROR_CASES = [
    ("x_missing", ["waveforms", "not found", "'traces'", "'labels'", "'truth/energy'", "x_key"]),
    ("x_group", ["waveforms", "group"]),
    ("y_missing", ["labels", "not found", "'target'", "'waveforms'", "data.y_key"]),
    ("x_int", ["waveforms", "int16", "float"]),
    ("y_float", ["labels", "float32", "integer"]),
    ("x_1d", ["waveforms", "(40,)"]),
    ("x_empty_event", ["waveforms", "(40, 0)"]),
    ("y_one_hot", ["labels", "(40, 3)"]),
    ("length", ["waveforms", "labels", "40", "39"]),
    ("too_few", ["waveforms", "only 2 events"]),
    ("label_range", ["labels", "label 3", "event 17", "0..2"]),
    ("label_negative", ["labels", "label -1", "event 23"]),
    ("class_names", ["class_names", "gamma, proton"]),
    ("nan", ["waveforms", "event 29", "NaN"]),
    ("inf", ["waveforms", "event 31"]),
]


@pytest.mark.parametrize(("case", "texts"), ERROR_CASES, ids=[c for c, _ in ERROR_CASES])
def test_inspect_errors_name_file_dataset_and_fix(
    tmp_path: Path, case: str, texts: list[str]
) -> None:
    path, layout = _build(tmp_path, case)
    with pytest.raises(DataError) as info:
        inspect_dataset(path, layout)
    check_error(info.value, path, *texts)


def test_error_key_is_the_dataset(tmp_path: Path) -> None:
    path, layout = _build(tmp_path, "y_float")
    with pytest.raises(DataError) as info:
        inspect_dataset(path, layout)
    assert info.value.key == "labels"
    assert info.value.source == str(path.resolve())


def test_nan_scan_reads_in_bounded_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 7 rows of 8 float32 per read: the NaN sits in a later read, not the first.
    monkeypatch.setattr(_hdf5, "_SCAN_BYTES", 7 * N_SAMPLES * 4)
    x = rows(500)
    x[401, 5] = np.nan
    for chunks in (None, (16, N_SAMPLES)):
        path = write(tmp_path / f"c{chunks is None}.h5", x=x, chunks=chunks)
        with pytest.raises(DataError) as info:
            inspect_dataset(path)
        check_error(info.value, path, "waveforms", "event 401")


def test_label_scan_reads_in_bounded_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hdf5, "_SCAN_BYTES", 10)
    y = np.zeros(300, np.int8)
    y[257] = 9
    path = write(tmp_path / "d.h5", x=rows(300), y=y)
    with pytest.raises(DataError) as info:
        inspect_dataset(path)
    check_error(info.value, path, "labels", "event 257")
    monkeypatch.setattr(_hdf5, "_SCAN_BYTES", 10)
    path = write(tmp_path / "e.h5", x=rows(300), y=(np.arange(300) % 7).astype(np.int8), attrs={})
    assert inspect_dataset(path).n_classes == 7


def test_scan_finite_can_be_turned_off(tmp_path: Path) -> None:
    path, layout = _build(tmp_path, "nan")
    assert inspect_dataset(path, layout, scan_finite=False).n_events == 40


def test_min_events_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "d.h5", 50)
    with pytest.raises(DataError) as info:
        inspect_dataset(path, min_events=100)
    check_error(info.value, path, "waveforms", "only 50 events", "100")


# --------------------------------------------------------------------------------------------
# make_split
# --------------------------------------------------------------------------------------------


def _events(blocks: np.ndarray) -> np.ndarray:
    if len(blocks) == 0:
        return np.zeros(0, np.int64)
    events: np.ndarray = np.concatenate([np.arange(a, b) for a, b in blocks])
    return events


@pytest.mark.parametrize(("n", "block_size"), [(1000, 32), (1001, 32), (97, 10), (3, 32), (50, 1)])
def test_split_is_disjoint_complete_and_sized(n: int, block_size: int) -> None:
    split = make_split(n, seed=4, block_size=block_size)
    parts = [_events(split.train), _events(split.val), _events(split.test)]
    every = np.concatenate(parts)
    assert len(every) == n
    assert np.array_equal(np.sort(every), np.arange(n))
    for name, fraction, events in zip(
        ("train", "val", "test"), (0.7, 0.15, 0.15), parts, strict=True
    ):
        blocks = split.part(name)
        assert blocks.dtype == np.int64
        assert blocks.ndim == 2
        assert blocks.shape[1] == 2
        assert (blocks[:, 1] - blocks[:, 0] <= block_size).all()
        assert split.n_events(name) == len(events) >= 1
        assert abs(len(events) - fraction * n) <= max(1, block_size)


def test_split_is_deterministic_and_depends_on_seed() -> None:
    a = make_split(5000, seed=1)
    b = make_split(5000, seed=1)
    c = make_split(5000, seed=2)
    for name in ("train", "val", "test"):
        assert np.array_equal(a.part(name), b.part(name))
    assert not np.array_equal(a.val, c.val)


def test_split_blocks_are_shuffled_over_the_file() -> None:
    split = make_split(10_000, seed=0, block_size=100)
    # Validation blocks come from all over the file, not one stretch of it.
    assert split.val[:, 0].min() < 2000
    assert split.val[:, 0].max() > 8000
    # And they are listed in random order, so the first blocks are a sample of the file.
    assert not np.array_equal(split.train[:, 0], np.sort(split.train[:, 0]))


def test_split_respects_fractions() -> None:
    split = make_split(10_000, seed=0, fractions=(0.5, 0.3, 0.2))
    assert (split.n_events("train"), split.n_events("val"), split.n_events("test")) == (
        5000,
        3000,
        2000,
    )


@pytest.mark.parametrize(
    ("fractions", "text"),
    [
        ((0.8, 0.2, 0.0), "> 0"),
        ((0.9, 0.2, -0.1), "> 0"),
        ((0.5, 0.2, 0.2), "sum to 1"),
        ((0.5, 0.5), "three"),
    ],
)
def test_split_rejects_bad_fractions(fractions: Any, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        make_split(100, seed=0, fractions=fractions)


def test_split_rejects_too_few_events_and_bad_block_size() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        make_split(2, seed=0)
    with pytest.raises(ValueError, match="block_size"):
        make_split(100, seed=0, block_size=0)
    with pytest.raises(ValueError, match="part"):
        make_split(100, seed=0).n_events("training")


def test_split_is_immutable() -> None:
    split = make_split(100, seed=0)
    assert isinstance(split, Split)
    with pytest.raises(ValueError):
        split.train[0, 0] = 5


# --------------------------------------------------------------------------------------------
# BatchReader
# --------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 32, 64, 1000])
def test_reader_covers_split_once_per_epoch(
    data_file: Path, shuffle: bool, batch_size: int
) -> None:
    split = make_split(1000, seed=3)
    with BatchReader(data_file, Layout(), split.train, batch_size, shuffle=shuffle, seed=5) as r:
        assert r.n_events == split.n_events("train") == 700
        assert len(r) == -(-700 // batch_size)
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
            assert np.array_equal(np.sort(events), _events(np.sort(split.train, axis=0)))
            if not shuffle:
                assert np.array_equal(events, np.sort(events))
            r.on_epoch_end()


def test_reader_reshuffles_deterministically(data_file: Path) -> None:
    split = make_split(1000, seed=3)

    def epochs(seed: int, n: int = 3) -> list[np.ndarray]:
        reader = BatchReader(data_file, Layout(), split.train, 32, shuffle=True, seed=seed)
        out = []
        for _ in range(n):
            out.append(np.concatenate([x[:, 0] for x, _ in iterate(reader)]))
            reader.on_epoch_end()
        return out

    first, again, other = epochs(1), epochs(1), epochs(2)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], other[0])


def test_reader_batches_are_random_access(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = BatchReader(data_file, Layout(), split.train, 32, shuffle=True, seed=1)
    forward = [r.batch(i)[0] for i in range(len(r))]
    backward = [r.batch(i)[0] for i in reversed(range(len(r)))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(r.batch(-1)[0], forward[-1])
    with pytest.raises(IndexError):
        r.batch(len(r))
    r.set_epoch(4)
    a = r.batch(0)[0]
    r.set_epoch(0)
    assert np.array_equal(r.batch(0)[0], forward[0])
    r.set_epoch(4)
    assert np.array_equal(r.batch(0)[0], a)


def test_unshuffled_reader_is_the_same_every_epoch(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = BatchReader(data_file, Layout(), split.val, 16, shuffle=False, seed=1)
    first = [x for x, _ in iterate(r)]
    r.on_epoch_end()
    assert all(np.array_equal(a, b) for a, b in zip(first, [x for x, _ in iterate(r)], strict=True))


def test_shuffled_batches_mix_classes_of_a_sorted_file(tmp_path: Path) -> None:
    n = 4096
    y = (np.arange(n) * 4 // n).astype(np.int8)  # sorted: 1024 of class 0, then class 1, ...
    path = write(tmp_path / "sorted.h5", x=rows(n), y=y, attrs={})
    split = make_split(n, seed=0)
    r = BatchReader(path, Layout(), split.train, 64, shuffle=True, seed=0, drop_remainder=True)
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
    plain = BatchReader(path, Layout(), split.train, 64, shuffle=False, seed=0)
    assert np.mean([len(np.unique(labels)) for _, labels in iterate(plain)]) < 1.5


def test_reader_reads_one_batch_at_a_time(tmp_path: Path) -> None:
    n, n_samples = 4000, 256
    path = write(tmp_path / "big.h5", x=rows(n, n_samples))  # 4 MB of inputs
    split = make_split(n, seed=0)
    r = BatchReader(path, Layout(), split.train, 32, shuffle=True, seed=0)
    for k in range(1, 6):
        r.batch(k)
        assert r.events_read == k * 32
    # No attribute holds event data: only small arrays of block boundaries.
    held = [v for v in vars(r).values() if isinstance(v, np.ndarray)]
    assert all(v.dtype.kind in "iu" for v in held)
    assert sum(v.nbytes for v in held) < n * n_samples * 4 / 50
    # Reading a whole epoch never holds more than a few batches in (numpy) memory.
    batch_bytes = 32 * n_samples * 4
    tracemalloc.start()
    try:
        for _ in iterate(r):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * batch_bytes
    assert r.events_read == 5 * 32 + split.n_events("train")


def test_max_events_takes_the_first_blocks(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    for shuffle in (False, True):
        r = BatchReader(
            data_file, Layout(), split.train, 10, shuffle=shuffle, seed=0, max_events=45
        )
        assert r.n_events == 45
        assert len(r) == 5
        events = np.concatenate([np.rint(x[:, 0]) for x, _ in iterate(r)]).astype(np.int64)
        assert np.array_equal(np.sort(events), np.sort(_events(split.train)[:45]))
    whole = BatchReader(
        data_file, Layout(), split.train, 10, shuffle=False, seed=0, max_events=10**6
    )
    assert whole.n_events == 700


def test_drop_remainder(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = BatchReader(data_file, Layout(), split.train, 64, shuffle=True, seed=0, drop_remainder=True)
    assert len(r) == 700 // 64
    assert all(len(y) == 64 for _, y in iterate(r))
    with pytest.raises(ValueError, match="batch"):
        BatchReader(data_file, Layout(), split.val, 1000, shuffle=True, seed=0, drop_remainder=True)


def test_reader_rejects_bad_arguments(data_file: Path) -> None:
    good = np.array([[0, 10]])
    with pytest.raises(ValueError, match="batch_size"):
        BatchReader(data_file, Layout(), good, 0, shuffle=False, seed=0)
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        BatchReader(data_file, Layout(), np.arange(4), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="start < stop"):
        BatchReader(data_file, Layout(), np.array([[5, 5]]), 2, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="overlap"):
        BatchReader(data_file, Layout(), np.array([[0, 10], [5, 15]]), 2, shuffle=False, seed=0)


def test_reader_opens_lazily_and_reports_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "later.h5"
    r = BatchReader(path, Layout(), np.array([[0, 10]]), 4, shuffle=False, seed=0)
    with pytest.raises(DataError) as info:
        r.batch(0)
    check_error(info.value, path, "not found")
    write(path, 5)
    with pytest.raises(DataError) as info:
        r.batch(0)
    check_error(info.value, path, "waveforms", "event 9", "only 5 events")
    write(path, 20, y_key="y")
    with pytest.raises(DataError) as info:
        r.batch(0)
    check_error(info.value, path, "labels", "'y'")
    write(path, 20)
    assert len(r.batch(0)[1]) == 4


def test_reader_catches_nan_with_event_index(tmp_path: Path) -> None:
    x = rows(1000)
    x[613, 2] = np.nan
    x[614, 0] = np.inf
    path = write(tmp_path / "nan.h5", x=x)
    inspect_dataset(path, scan_finite=False)  # a huge file would skip the full scan
    blocks = np.array([[0, 1000]])
    for shuffle in (False, True):
        r = BatchReader(path, Layout(), blocks, 32, shuffle=shuffle, seed=0)
        caught = []
        for i in range(len(r)):
            try:
                r.batch(i)
            except DataError as err:
                check_error(err, path, "waveforms", "NaN")
                caught.append(str(err))
        assert len(caught) >= 1
        assert any("event 613" in c or "event 614" in c for c in caught)
    r = BatchReader(path, Layout(), np.array([[614, 620]]), 32, shuffle=False, seed=0)
    with pytest.raises(DataError, match="event 614"):
        r.batch(0)


def test_reader_works_after_pickling(data_file: Path) -> None:
    split = make_split(1000, seed=3)
    r = BatchReader(data_file, Layout(), split.train, 32, shuffle=True, seed=9)
    r.on_epoch_end()
    expected = r.batch(3)  # the file is open now
    copy = pickle.loads(pickle.dumps(r))
    assert copy._file is None
    got = copy.batch(3)
    assert np.array_equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    r.close()
    assert r._file is None
    assert np.array_equal(r.batch(3)[0], expected[0])  # reopens after close


def test_reader_works_in_another_process(data_file: Path, tmp_path: Path) -> None:
    split = make_split(1000, seed=3)
    r = BatchReader(data_file, Layout(), split.val, 16, shuffle=True, seed=2)
    r.batch(0)
    (tmp_path / "reader.pkl").write_bytes(pickle.dumps(r))
    script = (
        "import pickle, sys, numpy as np\n"
        "r = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "x, y = r.batch(2)\n"
        "np.save(sys.argv[2], x)\n"
    )
    out = tmp_path / "x.npy"
    # Another working directory: the reader carries an absolute path.
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "reader.pkl"), str(out)],
        check=True,
        cwd="/",
        timeout=60,
    )
    assert np.array_equal(np.load(out), r.batch(2)[0])


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
    r = BatchReader("u.h5", layout, np.array([[10, 30]]), 8, shuffle=False, seed=0)
    assert r.path == tmp_path.resolve() / "u.h5"
    x, y = r.batch(0)
    assert x.dtype == np.float32
    assert np.array_equal(x[:, 0], np.arange(10, 18))
    assert np.array_equal(y, np.arange(10, 18) % 2)


# --------------------------------------------------------------------------------------------
# Keras
# --------------------------------------------------------------------------------------------


def test_importing_data_does_not_import_keras() -> None:
    code = (
        "import sys, hpsearch.data\n"
        "from hpsearch.data import *\n"
        "bad = [m for m in ('keras', 'tensorflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_keras_adapter_fits_a_model(data_file: Path) -> None:
    keras = pytest.importorskip("keras")
    from hpsearch.data import keras_dataset

    split = make_split(1000, seed=3)
    train = BatchReader(data_file, Layout(), split.train, 64, shuffle=True, seed=0)
    val = BatchReader(data_file, Layout(), split.val, 64, shuffle=False, seed=0)
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
