"""Tests of the batch reader (hpsearch.data._reader) and its Keras adapter.

Every file is written here with h5py directly (no dependency on the simulator). Row ``i`` of
the inputs starts with the value ``i``, so a batch can be traced back to its events.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5files import N_SAMPLES, check_error, events_of, rows, write
from hpsearch.data import (
    BatchReader,
    Layout,
    inspect_dataset,
    iterate,
    make_split,
)
from hpsearch.errors import DataError

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
            assert np.array_equal(np.sort(events), events_of(np.sort(split.train, axis=0)))
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
        assert np.array_equal(np.sort(events), np.sort(events_of(split.train)[:45]))
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
