"""Tests of hpsearch.data: file checks and splits.

Every file is written here with h5py directly (no dependency on the simulator). Row ``i`` of
the inputs starts with the value ``i``, so a batch can be traced back to its events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from h5files import N_SAMPLES, check_error, events_of, rows, write
from hpsearch.data import (
    DatasetInfo,
    Layout,
    Split,
    inspect_dataset,
    make_split,
)
from hpsearch.data import _files as _hdf5
from hpsearch.errors import DataError

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


@pytest.mark.parametrize(("n", "block_size"), [(1000, 32), (1001, 32), (97, 10), (3, 32), (50, 1)])
def test_split_is_disjoint_complete_and_sized(n: int, block_size: int) -> None:
    split = make_split(n, seed=4, block_size=block_size)
    parts = [events_of(split.train), events_of(split.val), events_of(split.test)]
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
