"""Tests of the splits a user's data defines: labels, index lists, files, groups.

Files are written with h5py directly (tests/h5files.py); every test checks which events land
in which part, against the definition in the file.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5files import add_datasets, check_error, events_of, write, write_shards
from hpsearch.data import DatasetInfo, inspect_dataset, make_split
from hpsearch.data._split import (
    Split,
    _runs,
    split_by_groups,
    split_from_files,
    split_from_indices,
    split_from_labels,
)
from hpsearch.errors import DataError

N = 400


def _file(tmp_path: Path, n: int = N, name: str = "d", **datasets: np.ndarray) -> DatasetInfo:
    path = write(tmp_path / f"{name}.h5", n)
    add_datasets(path, {key.replace("__", "/"): value for key, value in datasets.items()})
    return inspect_dataset(path)


def _labels(n: int = N, *, seed: int = 0, with_val: bool = True) -> np.ndarray:
    """Split labels 0/1/2 in stretches of random length, as a published file might hold."""
    rng = np.random.default_rng(seed)
    choices = [0, 1, 2] if with_val else [0, 2]
    out = np.repeat(rng.choice(choices, n), rng.integers(1, 9, n))[:n]
    return out.astype(np.int8)


def _events(split: Split, part: str) -> np.ndarray:
    return np.sort(events_of(split.part(part)))


def _check_blocks(split: Split, n: int, block_size: int) -> None:
    """Parts are disjoint, sorted blocks are valid, training blocks are at most block_size."""
    every = np.concatenate([_events(split, p) for p in ("train", "val", "test")])
    assert len(np.unique(every)) == len(every)
    assert every.min() >= 0
    assert every.max() < n
    for part in ("train", "val", "test"):
        blocks = split.part(part)
        assert blocks.dtype == np.int64
        assert (blocks[:, 1] > blocks[:, 0]).all()
        assert split.n_events(part) >= 1
        assert not blocks.flags.writeable
    train = split.train
    assert (train[:, 1] - train[:, 0] <= block_size).all()


# --------------------------------------------------------------------------------------------
# split_from_labels
# --------------------------------------------------------------------------------------------


def test_labels_give_exactly_the_marked_events(tmp_path: Path) -> None:
    labels = _labels()
    info = _file(tmp_path, split=labels)
    split = split_from_labels(info, "split", seed=3, block_size=8)
    _check_blocks(split, N, 8)
    for part, code in (("train", 0), ("val", 1), ("test", 2)):
        assert np.array_equal(_events(split, part), np.flatnonzero(labels == code))
    # Validation and test in file order; training in a seeded random order.
    assert np.array_equal(split.test[:, 0], np.sort(split.test[:, 0]))
    assert not np.array_equal(split.train[:, 0], np.sort(split.train[:, 0]))
    again = split_from_labels(info, "split", seed=3, block_size=8)
    assert np.array_equal(again.train, split.train)
    other = split_from_labels(info, "split", seed=4, block_size=8)
    assert not np.array_equal(other.train, split.train)
    # The same events whatever the seed: the fingerprint says so.
    assert other.fingerprint() == split.fingerprint()
    assert split.sizes() == {
        "train": int((labels == 0).sum()),
        "val": int((labels == 1).sum()),
        "test": int((labels == 2).sum()),
    }


@pytest.mark.parametrize("kind", ["bytes", "vlen", "numbers"])
def test_labels_as_strings_of_any_case(tmp_path: Path, kind: str) -> None:
    labels = _labels(seed=1)
    names = np.array(["train", "VAL", "Test"])
    if kind == "bytes":
        stored: np.ndarray = names.astype("S5")[labels]
    elif kind == "vlen":
        stored = names.astype(object)[labels].astype(h5py.string_dtype())
    else:
        stored = labels.astype(np.int64)
    info = _file(tmp_path, split=stored)
    split = split_from_labels(info, "split", seed=0, block_size=16)
    for part, code in (("train", 0), ("val", 1), ("test", 2)):
        assert np.array_equal(_events(split, part), np.flatnonzero(labels == code))


def test_labels_without_val_carve_it_from_train(tmp_path: Path) -> None:
    labels = _labels(2000, with_val=False)
    info = _file(tmp_path, 2000, split=labels)
    split = split_from_labels(info, "split", seed=5, block_size=10)
    _check_blocks(split, 2000, 10)
    given_train = np.flatnonzero(labels == 0)
    assert np.array_equal(_events(split, "test"), np.flatnonzero(labels == 2))
    train, val = _events(split, "train"), _events(split, "val")
    assert np.array_equal(np.sort(np.concatenate([train, val])), given_train)
    assert len(val) == round(0.15 * len(given_train))
    # Seeded blocks from all over the training part, not its first stretch.
    assert val.min() < 500
    assert val.max() > 1500
    assert np.array_equal(split_from_labels(info, "split", seed=5, block_size=10).val, split.val)
    other = split_from_labels(info, "split", seed=6, block_size=10)
    assert not np.array_equal(_events(other, "val"), val)
    assert np.array_equal(_events(other, "test"), _events(split, "test"))
    half = split_from_labels(info, "split", seed=5, block_size=10, val_fraction=0.5)
    assert len(_events(half, "val")) == round(0.5 * len(given_train))


def test_labels_over_two_shards_count_events_globally(tmp_path: Path) -> None:
    labels = _labels(300, seed=2)
    paths = write_shards(tmp_path, [170, 130], datasets={"split": labels})
    info = inspect_dataset(paths)
    split = split_from_labels(info, "split", seed=1, block_size=32)
    for part, code in (("train", 0), ("val", 1), ("test", 2)):
        assert np.array_equal(_events(split, part), np.flatnonzero(labels == code))
        blocks = split.part(part)
        # No block spans the two files.
        assert not ((blocks[:, 0] < 170) & (blocks[:, 1] > 170)).any()


def test_labels_with_other_values_are_listed(tmp_path: Path) -> None:
    labels = _labels().astype(np.int64)
    labels[[5, 9]] = [3, 7]
    info = _file(tmp_path, split=labels)
    with pytest.raises(DataError) as err:
        split_from_labels(info, "split", seed=0, block_size=8)
    check_error(err.value, info.path, "split", "0/1/2", "3, 7", "0, 1, 2, 3, 7")
    words = np.array([b"train", b"valid", b"test"])[_labels()]
    info = _file(tmp_path, name="words", split=words)
    with pytest.raises(DataError) as err:
        split_from_labels(info, "split", seed=0, block_size=8)
    check_error(err.value, info.path, "'valid'")


def test_labels_errors(tmp_path: Path) -> None:
    labels = _labels()
    info = _file(tmp_path, split=np.where(labels == 2, 1, labels).astype(np.int8))
    with pytest.raises(DataError) as err:
        split_from_labels(info, "split", seed=0, block_size=8)
    check_error(err.value, info.path, "split", "no event is marked 'test'")
    info = _file(tmp_path, name="with_val", split=labels)
    with pytest.raises(DataError) as err:
        split_from_labels(info, "split", seed=0, block_size=8, val_fraction=0.2)
    check_error(err.value, info.path, "split", "val_fraction 0.2", "'val'")
    with pytest.raises(DataError) as err:
        split_from_labels(info, "nosuch", seed=0, block_size=8)
    check_error(err.value, info.path, "nosuch", "not found", "data.split.labels")
    add_datasets(info.path, {"short": labels[:-1]})
    with pytest.raises(DataError) as err:
        split_from_labels(info, "short", seed=0, block_size=8)
    check_error(err.value, info.path, "short", f"({N},)")
    with pytest.raises(ValueError, match="val_fraction"):
        split_from_labels(info, "split", seed=0, block_size=8, val_fraction=1.5)


def test_a_training_part_too_small_to_carve_from(tmp_path: Path) -> None:
    labels = np.full(N, 2, np.int8)
    labels[7] = 0
    info = _file(tmp_path, split=labels)
    with pytest.raises(DataError) as err:
        split_from_labels(info, "split", seed=0, block_size=8)
    check_error(err.value, info.path, "1 events", "validation")


# --------------------------------------------------------------------------------------------
# split_from_indices
# --------------------------------------------------------------------------------------------


def test_indices_give_exactly_the_listed_events(tmp_path: Path) -> None:
    order = np.random.default_rng(0).permutation(N)
    test, val, train = order[:60], order[60:110], order[110:350]  # 50 events left out
    info = _file(tmp_path, idx__train=train, idx__val=val, idx__test=test)
    keys = {"train": "idx/train", "val": "idx/val", "test": "idx/test"}
    split = split_from_indices(info, keys, seed=0, block_size=4)
    _check_blocks(split, N, 4)
    assert np.array_equal(_events(split, "test"), np.sort(test))
    assert np.array_equal(_events(split, "val"), np.sort(val))
    assert np.array_equal(_events(split, "train"), np.sort(train))
    # Without a val dataset, val comes out of train; test stays.
    carved = split_from_indices(
        info, {"train": "idx/train", "test": "idx/test"}, seed=0, block_size=4
    )
    assert np.array_equal(_events(carved, "test"), np.sort(test))
    both = np.sort(np.concatenate([_events(carved, "train"), _events(carved, "val")]))
    assert np.array_equal(both, np.sort(train))
    assert carved.n_events("val") == round(0.15 * len(train))


def test_indices_over_two_shards_are_global(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, [100, 150])
    add_datasets(paths[0], {"train": np.arange(0, 200), "test": np.arange(200, 250)})
    info = inspect_dataset(paths)
    split = split_from_indices(info, {"train": "train", "test": "test"}, seed=1, block_size=16)
    assert np.array_equal(_events(split, "test"), np.arange(200, 250))
    assert split.n_events("train") + split.n_events("val") == 200


@pytest.mark.parametrize(
    ("test", "texts"),
    [
        (np.array([300, 400, 12]), ["idx/test", "index 400", "0..399"]),
        (np.array([300, -1]), ["idx/test", "index -1"]),
        (np.array([300, 301, 300]), ["idx/test", "300", "twice"]),
        (np.array([300, 5]), ["idx/test", "5", "'idx/train'"]),
        (np.array([], dtype=np.int64), ["idx/test", "empty"]),
        (np.array([1.0, 2.0]), ["idx/test", "float64", "integer"]),
    ],
    ids=["too_high", "negative", "duplicate", "shared", "empty", "float"],
)
def test_indices_errors_name_the_dataset(
    tmp_path: Path, test: np.ndarray, texts: list[str]
) -> None:
    info = _file(tmp_path, idx__train=np.arange(0, 200), idx__test=test)
    with pytest.raises(DataError) as err:
        split_from_indices(info, {"train": "idx/train", "test": "idx/test"}, seed=0, block_size=8)
    check_error(err.value, info.path, *texts)
    assert err.value.key == "idx/test"


def test_indices_argument_errors(tmp_path: Path) -> None:
    info = _file(tmp_path, idx__train=np.arange(0, 200), idx__val=np.arange(200, 250))
    add_datasets(info.path, {"idx/test": np.arange(300, 400)})
    with pytest.raises(ValueError, match="'test'"):
        split_from_indices(info, {"train": "idx/train"}, seed=0, block_size=8)
    with pytest.raises(ValueError, match="'validation'"):
        split_from_indices(
            info, {"train": "a", "test": "b", "validation": "c"}, seed=0, block_size=8
        )
    keys = {"train": "idx/train", "val": "idx/val", "test": "idx/test"}
    with pytest.raises(DataError) as err:
        split_from_indices(info, keys, seed=0, block_size=8, val_fraction=0.1)
    check_error(err.value, info.path, "idx/val", "val_fraction")


# --------------------------------------------------------------------------------------------
# split_from_files
# --------------------------------------------------------------------------------------------


def test_files_are_the_parts(tmp_path: Path) -> None:
    info = inspect_dataset(write_shards(tmp_path, [200, 40, 60]))
    split = split_from_files(info, ["train", "val", "test"], seed=0, block_size=16)
    _check_blocks(split, 300, 16)
    assert np.array_equal(_events(split, "train"), np.arange(0, 200))
    assert np.array_equal(_events(split, "val"), np.arange(200, 240))
    assert np.array_equal(_events(split, "test"), np.arange(240, 300))


def test_files_without_val_carve_it_and_several_files_per_part(tmp_path: Path) -> None:
    info = inspect_dataset(write_shards(tmp_path, [50, 100, 30, 70]))
    split = split_from_files(info, ["test", "train", "test", "train"], seed=2, block_size=16)
    _check_blocks(split, 250, 16)
    assert np.array_equal(_events(split, "test"), np.r_[0:50, 150:180])
    both = np.sort(np.concatenate([_events(split, "train"), _events(split, "val")]))
    assert np.array_equal(both, np.r_[50:150, 180:250])
    assert split.n_events("val") == round(0.15 * 170)
    # Training blocks do not span the boundary between files 1 and 3 (event 150 and 180).
    train = split.train
    assert not ((train[:, 0] < 150) & (train[:, 1] > 150)).any()


def test_files_errors(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, [100, 40, 60])
    info = inspect_dataset(paths)
    with pytest.raises(DataError) as err:
        split_from_files(info, ["train", "test"], seed=0, block_size=8)
    check_error(err.value, paths[0], "2 split parts", "3 data files")
    with pytest.raises(DataError) as err:
        split_from_files(info, ["train", "val", "test"], seed=0, block_size=8, val_fraction=0.1)
    check_error(err.value, paths[1], "val_fraction")
    with pytest.raises(ValueError, match="'test'"):
        split_from_files(info, ["train", "val", "val"], seed=0, block_size=8)
    with pytest.raises(ValueError, match="'testing'"):
        split_from_files(info, ["train", "val", "testing"], seed=0, block_size=8)


# --------------------------------------------------------------------------------------------
# split_by_groups
# --------------------------------------------------------------------------------------------


def _groups(n: int = N) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 6, n)


def test_groups_train_on_some_and_test_on_others(tmp_path: Path) -> None:
    groups = _groups()
    info = _file(tmp_path, model=groups)
    split = split_by_groups(info, "model", train=[0, 1, 2], test=[3, 4], seed=0, block_size=8)
    _check_blocks(split, N, 8)
    assert np.array_equal(_events(split, "test"), np.flatnonzero(np.isin(groups, [3, 4])))
    both = np.sort(np.concatenate([_events(split, "train"), _events(split, "val")]))
    assert np.array_equal(both, np.flatnonzero(np.isin(groups, [0, 1, 2])))
    # Group 5 is listed nowhere: its events are left out.
    assert sum(split.sizes().values()) == int((groups != 5).sum())
    with_val = split_by_groups(
        info, "model", train=[0, 1], val=[2], test=[3, 4], seed=0, block_size=8
    )
    assert np.array_equal(_events(with_val, "val"), np.flatnonzero(groups == 2))
    assert np.array_equal(_events(with_val, "train"), np.flatnonzero(np.isin(groups, [0, 1])))


@pytest.mark.parametrize("stored", ["bytes", "vlen"])
def test_groups_as_strings_over_two_shards(tmp_path: Path, stored: str) -> None:
    names = np.array(["gal-A", "gal-B", "gal-C", "gal-D", "gal-E", "gal-F"])
    groups = _groups(300)
    values = names[groups].astype("S5") if stored == "bytes" else names[groups].astype(object)
    if stored == "vlen":
        values = values.astype(h5py.string_dtype())
    info = inspect_dataset(write_shards(tmp_path, [120, 180], datasets={"model": values}))
    split = split_by_groups(
        info,
        "model",
        train=["gal-A", "gal-B", "gal-C"],
        test=["gal-D", "gal-E"],
        seed=1,
        block_size=8,
    )
    assert np.array_equal(_events(split, "test"), np.flatnonzero(np.isin(groups, [3, 4])))


def test_groups_errors_list_the_groups_present(tmp_path: Path) -> None:
    info = _file(tmp_path, model=_groups())
    present = "0, 1, 2, 3, 4, 5"
    with pytest.raises(DataError) as err:
        split_by_groups(info, "model", train=[0, 1, 9], test=[3], seed=0, block_size=8)
    check_error(err.value, info.path, "model", "train group 9 never occurs", present)
    with pytest.raises(DataError) as err:
        split_by_groups(info, "nosuch", train=[0], test=[3], seed=0, block_size=8)
    check_error(err.value, info.path, "nosuch", "not found", "data.groups.key")
    with pytest.raises(DataError) as err:
        split_by_groups(info, "model", train=[0, 1], test=["3"], seed=0, block_size=8)
    check_error(err.value, info.path, "'3' never occurs", "without quotes", present)
    with pytest.raises(DataError) as err:
        split_by_groups(info, "model", train=[0, 1, 3], test=[3, 4], seed=0, block_size=8)
    check_error(err.value, info.path, "group 3", "both train and test", present)
    with pytest.raises(DataError) as err:
        split_by_groups(
            info, "model", train=[0], val=[1], test=[3], seed=0, block_size=8, val_fraction=0.2
        )
    check_error(err.value, info.path, "val_fraction")
    with pytest.raises(ValueError, match="test groups"):
        split_by_groups(info, "model", train=[0], test=[], seed=0, block_size=8)


# --------------------------------------------------------------------------------------------
# Split.fingerprint, runs, speed
# --------------------------------------------------------------------------------------------


def test_fingerprint_depends_on_events_only() -> None:
    split = make_split(1000, seed=1, block_size=10)
    # The same events cut and ordered differently.
    middle = (split.val[:, 0] + split.val[:, 1]) // 2
    halves = np.concatenate(
        [np.stack([split.val[:, 0], middle], 1), np.stack([middle, split.val[:, 1]], 1)]
    )
    cut = Split(train=split.train[::-1], val=halves[::-1], test=split.test)
    assert cut.fingerprint() == split.fingerprint()
    assert len(split.fingerprint()) == 16
    assert make_split(1000, seed=2).fingerprint() != split.fingerprint()
    swapped = Split(train=split.train, val=split.test, test=split.val)
    assert swapped.fingerprint() != split.fingerprint()
    assert split.sizes() == {"train": 700, "val": 150, "test": 150}


def test_runs_match_a_per_event_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random(200) < rng.random()
        cuts = np.sort(rng.choice(np.arange(1, 200), 3, replace=False))
        expected = []
        start = None
        for i in range(201):
            on = i < 200 and mask[i]
            if start is not None and (not on or i in cuts):
                expected.append([start, i])
                start = None
            if on and start is None:
                start = i
        assert _runs(mask, cuts).tolist() == expected


def test_a_million_events_split_well_under_a_second(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f["split"] = rng.choice(np.array([0, 2], np.int8), n, p=[0.8, 0.2])
        f["model"] = rng.integers(0, 5, n).astype(np.int16)
    info = DatasetInfo(path, n, (8,), "float32", "int8", 2)
    start = time.perf_counter()
    split = split_from_labels(info, "split", seed=0, block_size=32)
    groups = split_by_groups(info, "model", train=[0, 1, 2], test=[3], seed=0, block_size=32)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert sum(split.sizes().values()) == n
    with h5py.File(path) as f:
        assert groups.n_events("test") == int((f["model"][:] == 3).sum())
