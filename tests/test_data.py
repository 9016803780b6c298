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

from h5files import N_SAMPLES, check_error, events_of, rows, write, write_shards
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
    # Every class 0..4 occurs (a gap is an error now: see test_labels_must_run_from_0_without_gaps).
    y = np.array([0, 1, 4, 2, 3] * 4, dtype=np.int16)
    path = write(tmp_path / "d.h5", x=rows(20), y=y, attrs={})
    info = inspect_dataset(path)
    assert info.n_classes == 5
    assert info.target == "classification"
    assert info.target_shape == ()
    assert info.class_names is None
    assert info.target_names == ()
    assert info.shards == (_hdf5.Shard(path.resolve(), 20),)


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
    elif case == "x_rank5":
        write(path, x=np.zeros((n, 2, 3, 4, 5, 1), np.float32))
    elif case == "labels_from_1":
        write(path, x=rows(n), y=(np.arange(n) % 3 + 1).astype(np.int8), attrs={})
    elif case == "labels_gap":
        write(path, x=rows(n), y=np.array([0, 1, 3, 4] * (n // 4), np.int8), attrs={})
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
    ("y_float", ["labels", "float32", "integer", "`task: regress` is for float targets"]),
    ("x_rank5", ["waveforms", "(40, 2, 3, 4, 5, 1)", "rank 5", "rank 1 to 4"]),
    (
        "labels_from_1",
        ["labels", "labels run 1..3", "class 0 never occurs", "from 0", "subtract 1"],
    ),
    ("labels_gap", ["labels", "class 2 of 0..4 never occurs", "renumber", "class names"]),
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
# inspect_dataset: class names, regression targets, event ranks, shards
# --------------------------------------------------------------------------------------------


def test_labels_must_run_from_0_without_gaps(tmp_path: Path) -> None:
    from_1 = write(
        tmp_path / "a.h5", x=rows(30), y=(np.arange(30) % 3 + 1).astype(np.int8), attrs={}
    )
    with pytest.raises(DataError) as info:
        inspect_dataset(from_1)
    check_error(info.value, from_1, "labels run 1..3", "class 0 never occurs", "subtract 1")
    gaps = write(tmp_path / "b.h5", x=rows(30), y=np.array([0, 3, 6] * 10, np.int8), attrs={})
    with pytest.raises(DataError) as info:
        inspect_dataset(gaps)
    check_error(info.value, gaps, "classes 1, 2, 4, 5 of 0..6 never occur")


def test_class_names_allow_absent_classes(tmp_path: Path) -> None:
    y = (np.arange(30) % 3 + 1).astype(np.int8)  # 1..3: class 0 absent
    path = write(tmp_path / "a.h5", x=rows(30), y=y, attrs={})
    info = inspect_dataset(path, class_names=["bg", "e", "mu", "tau"])
    assert info.n_classes == 4
    assert info.class_names == ("bg", "e", "mu", "tau")
    # The file's own names do the same, and the study may rename them (same count).
    named = write(tmp_path / "b.h5", x=rows(30), y=y, attrs={"class_names": '["a","b","c","d"]'})
    assert inspect_dataset(named).class_names == ("a", "b", "c", "d")
    assert inspect_dataset(named, class_names=list("wxyz")).class_names == tuple("wxyz")
    gap = write(tmp_path / "c.h5", x=rows(30), y=np.array([0, 2] * 15, np.int8))
    assert inspect_dataset(gap).n_classes == 3  # the file names a, b, c


def test_class_names_errors(tmp_path: Path) -> None:
    y = (np.arange(30) % 3 + 1).astype(np.int8)
    path = write(tmp_path / "a.h5", x=rows(30), y=y, attrs={})
    with pytest.raises(DataError) as info:
        inspect_dataset(path, class_names=["a", "b", "c"])
    check_error(info.value, path, "labels", "label 3 at event 2", "0..2", "study's class_names")
    named = write(tmp_path / "b.h5", 30)  # the file names a, b, c
    with pytest.raises(DataError) as info:
        inspect_dataset(named, class_names=["a", "b"])
    check_error(info.value, named, "class_names", "3 names", "gives 2")
    with pytest.raises(ValueError, match="class_names"):
        inspect_dataset(named, class_names="abc")
    with pytest.raises(ValueError, match="class_names are for classification"):
        inspect_dataset(named, target="regression", class_names=["a"])


def test_regression_single_target(tmp_path: Path) -> None:
    y = np.linspace(0, 1, 40).astype(np.float64)
    path = write(tmp_path / "r.h5", x=rows(40), y=y, y_key="energy", attrs={})
    info = inspect_dataset(path, Layout(y_key="energy"), target="regression")
    assert info.target == "regression"
    assert info.n_classes == 0
    assert info.target_shape == ()
    assert info.target_names == ("energy",)
    assert info.class_names is None
    assert info.n_targets == 1
    assert info.y_dtype == "float64"
    ints = write(tmp_path / "i.h5", x=rows(40), y=np.arange(40, dtype=np.int32), attrs={})
    assert inspect_dataset(ints, target="regression").target_names == ("labels",)


@pytest.mark.parametrize(
    ("attrs", "given", "expected"),
    [
        ({}, None, ("target_0", "target_1", "target_2")),
        ({"target_names": json.dumps(["E", "theta", "phi"])}, None, ("E", "theta", "phi")),
        ({"target_names": np.array([b"E", b"x", b"y"])}, None, ("E", "x", "y")),
        ({"target_names": json.dumps(["E", "theta", "phi"])}, ["a", "b", "c"], ("a", "b", "c")),
    ],
    ids=["default", "json_attr", "array_attr", "study"],
)
def test_regression_several_targets_and_their_names(
    tmp_path: Path, attrs: dict[str, Any], given: list[str] | None, expected: tuple[str, ...]
) -> None:
    y = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    path = write(tmp_path / "r.h5", x=rows(40), y=y, attrs=attrs)
    info = inspect_dataset(path, target="regression", target_names=given)
    assert info.target_shape == (3,)
    assert info.n_targets == 3
    assert info.target_names == expected
    assert info.event_bytes == 4 * N_SAMPLES + 12


def test_regression_errors(tmp_path: Path) -> None:
    y = np.ones((40, 2), np.float32)
    y[33, 1] = np.nan
    path = write(tmp_path / "nan.h5", x=rows(40), y=y, attrs={})
    # Targets are scanned even when the inputs' scan is off.
    with pytest.raises(DataError) as info:
        inspect_dataset(path, target="regression", scan_finite=False)
    check_error(info.value, path, "labels", "non-finite target", "event 33")
    good = write(tmp_path / "two.h5", x=rows(40), y=np.ones((40, 2), np.float32), attrs={})
    with pytest.raises(DataError) as info:
        inspect_dataset(good, target="regression", target_names=["a", "b", "c"])
    check_error(info.value, good, "3 target names", "2 target(s)")
    bad_attr = write(tmp_path / "attr.h5", x=rows(40), y=np.ones(40), attrs={"target_names": "E"})
    with pytest.raises(DataError) as info:
        inspect_dataset(bad_attr, target="regression")
    check_error(info.value, bad_attr, "target_names", "JSON list")
    flags = write(tmp_path / "bool.h5", x=rows(40), y=np.ones(40, bool), attrs={})
    with pytest.raises(DataError) as info:
        inspect_dataset(flags, target="regression")
    check_error(info.value, flags, "labels", "bool", "numbers")
    cube = write(tmp_path / "cube.h5", x=rows(40), y=np.ones((40, 2, 2)), attrs={})
    with pytest.raises(DataError) as info:
        inspect_dataset(cube, target="regression")
    check_error(info.value, cube, "labels", "(40, 2, 2)", "(n_events, n_targets)")


@pytest.mark.parametrize("event_shape", [(8,), (8, 2), (4, 4, 2), (3, 3, 5, 2)])
def test_inputs_of_rank_1_to_4(tmp_path: Path, event_shape: tuple[int, ...]) -> None:
    x = np.zeros((12, *event_shape), np.float32)
    path = write(tmp_path / "x.h5", x=x, y=np.arange(12) % 2)
    assert inspect_dataset(path).event_shape == event_shape


def test_shards_make_one_data_set(tmp_path: Path) -> None:
    y = np.r_[np.zeros(50), np.ones(40), np.full(30, 2)].astype(np.int8)  # class 2 only in file 2
    paths = write_shards(tmp_path, [90, 30], y=y)
    info = inspect_dataset([str(p) for p in paths])
    assert info.n_events == 120
    assert info.path == paths[0].resolve()
    assert info.shards == (_hdf5.Shard(paths[0], 90), _hdf5.Shard(paths[1], 30))
    assert info.files == info.shards
    assert info.n_classes == 3
    assert info.class_names == ("a", "b", "c")
    assert info.attrs["task"] == "test"


def test_shards_report_errors_with_global_event_indices(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, [60, 60])
    with h5py.File(paths[1], "a") as f:
        f["waveforms"][7, 2] = np.nan
    with pytest.raises(DataError) as info:
        inspect_dataset(paths)
    check_error(info.value, paths[1], "waveforms", "event 7 (event 67 of the data set)")
    with pytest.raises(DataError) as info:
        inspect_dataset([paths[0], paths[0]])
    check_error(info.value, paths[0], "listed twice")
    with pytest.raises(DataError) as info:
        inspect_dataset(paths, min_events=200)
    check_error(info.value, paths[0], "only 120 events in 2 files")


def _other_shard(path: Path, case: str) -> None:
    if case == "event_shape":
        write(path, x=rows(30, n_samples=N_SAMPLES + 1))
    elif case == "rank":
        write(path, x=rows(30)[:, :, None])
    elif case == "y_kind":
        write(path, x=rows(30), y=np.arange(30, dtype=np.float32))
    elif case == "target_shape":
        write(path, x=rows(30), y=np.ones((30, 3), np.float32))
    elif case == "class_names":
        write(path, 30, attrs={"class_names": json.dumps(["a", "b", "x"])})
    else:  # pragma: no cover
        raise AssertionError(case)


SHARD_CASES = [
    ("event_shape", "classification", ["waveforms", "(9,)", "(8,)", "shard0.h5", "same shape"]),
    ("rank", "classification", ["waveforms", "(8, 1)", "(8,)"]),
    ("y_kind", "regression", ["labels", "float32", "int8", "shard0.h5"]),
    ("target_shape", "regression", ["labels", "(3,)", "()", "shard0.h5"]),
    ("class_names", "classification", ["class_names", "'x'", "differ", "shard0.h5"]),
]


@pytest.mark.parametrize(
    ("case", "target", "texts"), SHARD_CASES, ids=[c for c, _, _ in SHARD_CASES]
)
def test_shards_that_disagree(tmp_path: Path, case: str, target: Any, texts: list[str]) -> None:
    first = write_shards(tmp_path, [30])[0]
    second = tmp_path / "other.h5"
    _other_shard(second, case)
    with pytest.raises(DataError) as info:
        inspect_dataset([first, second], target=target)
    check_error(info.value, second, *texts)


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
