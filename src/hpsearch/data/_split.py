"""Cutting a study's events into train, validation and test parts.

The parts are lists of contiguous ``[start, stop)`` blocks of event indices, so that reading a
part from disk is a few slices, never point-by-point fancy indexing. Indices are global: in a
data set of several files (shards), event ``i`` counts across the files in order.

A study either cuts its events by fractions (:func:`make_split`), or uses a split its data
already defines: a per-event label (:func:`split_from_labels`), lists of event indices
(:func:`split_from_indices`), one part per file (:func:`split_from_files`), or groups of
events such as simulation models (:func:`split_by_groups`). A predefined test part is used
exactly as given, so results compare with other work on the same data; when the data defines
no validation part, one is carved from the training events.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hpsearch.data._files import (
    DatasetInfo,
    Layout,
    Shard,
    _get_dataset,
    _listing,
    _open_file,
    _rows_per_read,
)
from hpsearch.errors import DataError
from hpsearch.seeding import derive_rng

__all__ = [
    "Split",
    "make_split",
    "split_by_groups",
    "split_from_files",
    "split_from_indices",
    "split_from_labels",
]

IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int8]

_PARTS = ("train", "val", "test")
#: Code of each part in a per-event array of part codes; events of no part are ``_LEFT_OUT``.
_CODE = {"train": 0, "val": 1, "test": 2}
_LEFT_OUT = -1
#: Share of the training events that validate when the data defines no validation part.
DEFAULT_VAL_FRACTION = 0.15


@dataclass(frozen=True, eq=False)
class Split:
    """Train, validation and test events as ``[start, stop)`` blocks of event indices.

    Each part is an int64 array of shape ``(k, 2)``. Blocks are listed in the seeded random
    order they were drawn in, not in file order (every part of :func:`make_split`, the training
    part of a predefined split), so "the first blocks of a part" (what
    ``BatchReader(max_events=...)`` takes) is a random sample spread over the whole part, not
    its beginning. Sort by start for file order.

    Attributes:
        train: Blocks of the training part.
        val: Blocks of the validation part.
        test: Blocks of the test part.
    """

    train: IntArray
    val: IntArray
    test: IntArray

    def __eq__(self, other: object) -> bool:
        """The same blocks in the same order: a split that travelled to a worker equals its own."""
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(self.part(p), other.part(p)) for p in _PARTS)

    def __hash__(self) -> int:
        return hash(tuple(self.part(p).tobytes() for p in _PARTS))

    def part(self, name: str) -> IntArray:
        """The blocks of part ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in _PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {', '.join(_PARTS)}")
        blocks: IntArray = getattr(self, name)
        return blocks

    def n_events(self, part: str) -> int:
        """Number of events in part ``part`` (``"train"``, ``"val"`` or ``"test"``)."""
        blocks = self.part(part)
        return int((blocks[:, 1] - blocks[:, 0]).sum())

    def sizes(self) -> dict[str, int]:
        """Events per part, ``{"train": ..., "val": ..., "test": ...}``, for logs and records."""
        return {name: self.n_events(name) for name in _PARTS}

    def fingerprint(self) -> str:
        """A short hash of which events each part holds, to tell whether two splits agree.

        Blocks are put in a canonical form first (sorted, touching blocks merged), so the same
        events give the same fingerprint whatever the blocks' order or how they are cut: two
        runs, or a run and a paper's split, compare by this string alone.

        Returns:
            The first 16 hex digits of a sha256 over the three parts.
        """
        digest = hashlib.sha256()
        for name in _PARTS:
            blocks = _canonical(self.part(name))
            digest.update(f"{name}:{len(blocks)}:".encode())
            digest.update(blocks.astype("<i8").tobytes())
        return digest.hexdigest()[:16]


def _canonical(blocks: IntArray) -> IntArray:
    """Blocks sorted by start, empty ones dropped, touching ones merged into one."""
    blocks = np.asarray(blocks, dtype=np.int64).reshape(-1, 2)
    blocks = blocks[blocks[:, 1] > blocks[:, 0]]
    if len(blocks) == 0:
        return blocks
    blocks = blocks[np.argsort(blocks[:, 0], kind="stable")]
    new_run = np.ones(len(blocks), dtype=bool)
    new_run[1:] = blocks[1:, 0] != blocks[:-1, 1]
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], len(blocks)) - 1
    return np.stack([blocks[first, 0], blocks[last, 1]], axis=1)


def make_split(
    n_events: int,
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    block_size: int = 32,
) -> Split:
    """Split ``n_events`` events into train, validation and test blocks.

    The events are cut into contiguous blocks of ``block_size`` so that reading a block from
    disk is one slice; the blocks are shuffled (by ``seed``) so that every part samples the
    whole file, even one sorted by class or by time. The shuffled sequence is then cut at the
    exact event counts, so a part's size is its fraction of ``n_events`` rounded to the nearest
    event (one block may be shared by two parts, each getting a contiguous piece of it).

    Deterministic in all four arguments: the same study always gets the same split. The seed
    is used through :func:`hpsearch.seeding.derive_rng` under the name ``"split"``, so passing
    the study's master seed does not correlate the split with other random streams.

    Args:
        n_events: Number of events in the file.
        seed: Seed of the split.
        fractions: Fractions of train, validation and test; each > 0, summing to 1.
        block_size: Events per block; larger blocks read faster but mix less.

    Returns:
        The :class:`Split`; its parts are disjoint and together cover every event once.

    Raises:
        ValueError: Fractions that are not three positive numbers summing to 1, a block_size
            below 1, or too few events to give every part at least one.
    """
    if len(fractions) != 3:
        raise ValueError(
            f"split fractions must be three numbers (train, val, test), got {fractions!r}"
        )
    if not all(math.isfinite(f) and f > 0 for f in fractions):
        raise ValueError(
            f"split fractions must each be > 0, got {fractions!r}; give every part some events"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"split fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g})"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if n_events < 3:
        raise ValueError(f"need at least 3 events to split into train/val/test, got {n_events}")

    n_val = max(1, round(fractions[1] * n_events))
    n_test = max(1, round(fractions[2] * n_events))
    n_train = n_events - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"{n_events} events are too few for fractions {fractions!r}: the training part "
            "would be empty"
        )

    starts = np.arange(0, n_events, block_size, dtype=np.int64)
    stops = np.minimum(starts + block_size, n_events)
    order = derive_rng(seed, "split").permutation(len(starts))
    starts, stops = starts[order], stops[order]
    # Position of every block in the shuffled sequence of events.
    ends = np.cumsum(stops - starts)
    begins = ends - (stops - starts)

    parts: list[IntArray] = []
    for lo, hi in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n_events)):
        # Blocks overlapping [lo, hi) of the shuffled sequence, clipped to it.
        take = (ends > lo) & (begins < hi)
        a = starts[take] + np.maximum(lo - begins[take], 0)
        b = starts[take] + np.minimum(hi - begins[take], stops[take] - starts[take])
        blocks = np.stack([a, b], axis=1).astype(np.int64)
        blocks.setflags(write=False)
        parts.append(blocks)
    return Split(train=parts[0], val=parts[1], test=parts[2])


# --------------------------------------------------------------------------------------------
# Splits the data defines
# --------------------------------------------------------------------------------------------


def _check_arguments(block_size: int, val_fraction: float | None) -> None:
    """Reject arguments that are wrong whatever the data (the study's checks catch these)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if val_fraction is not None and not (math.isfinite(val_fraction) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")


def _runs(mask: npt.NDArray[np.bool_], cuts: IntArray) -> IntArray:
    """Maximal ``[start, stop)`` runs of True in ``mask``, also cut at the positions ``cuts``.

    Vectorised (no Python loop per event): a run starts where the mask rises and stops where it
    falls. ``cuts`` are the shard boundaries, so that no block spans two files.
    """
    edges = np.diff(mask.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    inside = cuts[(cuts > 0) & (cuts < len(mask))]
    inside = inside[mask[inside] & mask[inside - 1]]
    if len(inside):
        # A cut strictly inside a run ends it and starts the next; runs are disjoint, so
        # sorting starts and stops separately keeps them paired.
        starts = np.sort(np.concatenate([starts, inside]))
        stops = np.sort(np.concatenate([stops, inside]))
    return np.stack([starts, stops], axis=1).astype(np.int64).reshape(-1, 2)


def _pieces(runs: IntArray, block_size: int) -> IntArray:
    """Cut runs into pieces of at most ``block_size`` events, on the grid of multiples of it.

    On the grid, the pieces of a whole file are exactly the blocks of :func:`make_split`.
    """
    if len(runs) == 0:
        return runs
    first = runs[:, 0] // block_size
    counts = (runs[:, 1] - 1) // block_size - first + 1
    owner = np.repeat(np.arange(len(runs)), counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    grid = (first[owner] + step) * block_size
    starts = np.maximum(runs[owner, 0], grid)
    stops = np.minimum(runs[owner, 1], grid + block_size)
    return np.stack([starts, stops], axis=1).astype(np.int64)


def _shard_cuts(info: DatasetInfo) -> IntArray:
    """Global indices where one shard ends and the next begins."""
    sizes = np.array([shard.n_events for shard in info.files], dtype=np.int64)
    return np.cumsum(sizes)[:-1]


def _frozen(blocks: IntArray) -> IntArray:
    blocks = np.ascontiguousarray(blocks, dtype=np.int64).reshape(-1, 2)
    blocks.setflags(write=False)
    return blocks


def _assemble(
    train: IntArray,
    val: IntArray | None,
    test: IntArray,
    *,
    seed: int,
    block_size: int,
    val_fraction: float | None,
    source: Path,
    key: str,
) -> Split:
    """Make the Split from runs in file order: shuffle training pieces, carve val if needed.

    The training runs are cut into pieces of at most ``block_size`` and listed in a seeded
    random order, so that a reader's ``max_events`` (the first blocks) samples the whole
    training part. Without a validation part, the first ``val_fraction`` of the events of that
    order validate: seeded blocks drawn from all over the training part, disjoint from it.
    Test (and a given validation part) stay as given, in file order.
    """
    pieces = _pieces(train, block_size)
    order = derive_rng(seed, "split", "predefined").permutation(len(pieces))
    pieces = pieces[order]
    if val is None:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        lengths = pieces[:, 1] - pieces[:, 0]
        ends = np.cumsum(lengths)
        n_train = int(ends[-1]) if len(ends) else 0
        n_val = max(1, round(fraction * n_train))
        if n_train - n_val < 1:
            raise DataError(
                source,
                key,
                f"the training part has {n_train} events, too few to carve a validation part "
                f"of {fraction:g} from it and keep some to train on",
                "give the training part more events, or define a validation part in the data",
            )
        cut = int(np.searchsorted(ends, n_val, side="left"))
        inside = n_val - int(ends[cut] - lengths[cut])  # events of piece `cut` that validate
        split_at = int(pieces[cut, 0]) + inside
        val = np.concatenate([pieces[:cut], [[pieces[cut, 0], split_at]]])
        rest = [[split_at, pieces[cut, 1]]] if split_at < pieces[cut, 1] else []
        pieces = np.concatenate([np.array(rest, dtype=np.int64).reshape(-1, 2), pieces[cut + 1 :]])
        val = val[np.argsort(val[:, 0], kind="stable")]
    return Split(train=_frozen(pieces), val=_frozen(val), test=_frozen(test))


def _no_val_fraction(val_fraction: float | None, source: Path, key: str, why: str) -> None:
    """A split whose data defines the validation part takes no val_fraction.

    A DataError (not a ValueError), since the study's setting contradicts what the data holds:
    the CLI reports it like every other problem with the data, with exit code 2.
    """
    if val_fraction is not None:
        raise DataError(
            source,
            key,
            f"val_fraction {val_fraction:g} was given, but {why} already defines the validation "
            "part",
            "drop val_fraction from the study: it only carves validation events from the "
            "training part when the data defines none",
        )


def _python(value: Any) -> Any:
    """A value of a dataset as plain Python: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _readable(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Values ``np.unique`` can sort fast: variable-length strings become a fixed-width array."""
    if values.dtype.kind != "O":
        return values
    try:
        return values.astype(np.bytes_)
    except (UnicodeEncodeError, TypeError, ValueError):
        return values.astype(np.str_)


def _sorted(values: set[Any]) -> list[Any]:
    """Values in natural order (numbers by value, strings alphabetically)."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _per_event(info: DatasetInfo, key: str, role: str, setting: str) -> Iterator[_Chunk]:
    """Read per-event dataset ``key`` of every shard, in bounded chunks, in global order."""
    offset = 0
    for shard in info.files:
        with _open_file(shard.path, Layout(key, key)) as file:
            dataset = _get_dataset(file, shard.path, key, role, setting=setting)
            if dataset.ndim != 1 or dataset.shape[0] != shard.n_events:
                raise DataError(
                    shard.path,
                    key,
                    f"{role} have shape {dataset.shape}, expected ({shard.n_events},): one value "
                    "per event of the file",
                    f"write one value per event into {key!r}, or set {setting} to the dataset "
                    "that has one",
                )
            step = _rows_per_read(dataset)
            for start in range(0, shard.n_events, step):
                yield _Chunk(
                    shard, offset, start, _readable(np.asarray(dataset[start : start + step]))
                )
        offset += shard.n_events


@dataclass(frozen=True)
class _Chunk:
    """Values of events ``offset + start`` onwards, read from ``shard``."""

    shard: Shard
    offset: int
    start: int
    values: npt.NDArray[Any]

    @property
    def first(self) -> int:
        return self.offset + self.start


def _codes_of(
    info: DatasetInfo,
    key: str,
    role: str,
    setting: str,
    code: Callable[[Any], int | None],
) -> tuple[CodeArray, dict[Path, set[Any]], dict[Path, set[Any]]]:
    """Part code of every event, by ``code`` of its value in ``key``; plus the values seen.

    ``code`` is called once per distinct value of a chunk (``np.unique``), never per event.

    Returns:
        The codes (``_LEFT_OUT`` where ``code`` gives None), and per file the values seen and
        those ``code`` gave None for.
    """
    codes = np.full(info.n_events, _LEFT_OUT, dtype=np.int8)
    seen: dict[Path, set[Any]] = {}
    unknown: dict[Path, set[Any]] = {}
    for chunk in _per_event(info, key, role, setting):
        uniques, inverse = np.unique(chunk.values, return_inverse=True)
        table = np.full(len(uniques), _LEFT_OUT, dtype=np.int8)
        for i, raw in enumerate(uniques.tolist()):
            value = _python(raw)
            seen.setdefault(chunk.shard.path, set()).add(value)
            part = code(value)
            if part is None:
                unknown.setdefault(chunk.shard.path, set()).add(value)
            else:
                table[i] = part
        codes[chunk.first : chunk.first + len(chunk.values)] = table[inverse.reshape(-1)]
    return codes, seen, unknown


def _label_code(value: Any) -> int | None:
    """Part code of a split label: 0/1/2 or "train"/"val"/"test" (any case); None otherwise."""
    if isinstance(value, str):
        return _CODE.get(value.strip().lower())
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value in (0, 1, 2):
        return int(value)
    return None


def split_from_labels(
    info: DatasetInfo,
    key: str,
    *,
    seed: int,
    block_size: int,
    val_fraction: float | None = None,
) -> Split:
    """The split a per-event label dataset defines: 0/1/2 or "train"/"val"/"test".

    Many published data sets ship a column that says which part each event belongs to; using
    it (rather than new random fractions) keeps the test events those of the publication.
    Strings may be str or bytes, in any case. The test part is exactly the events marked test.

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` found it.
        key: Dataset with one label per event, in every file of the data set.
        seed: Seed of the training order and of a carved validation part.
        block_size: Most events per training block.
        val_fraction: Share of the training events that validate when no event is marked
            "val" (default 0.15); an error when some are.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: The dataset is missing or has not one value per event, holds other values,
            no event is marked train or test, ``val_fraction`` is given while events are
            marked "val", or the training part is too small to carve a validation part from.
        ValueError: A bad ``block_size`` or ``val_fraction``.
    """
    _check_arguments(block_size, val_fraction)
    setting = "data.split.labels"
    codes, seen, unknown = _codes_of(info, key, "split labels", setting, _label_code)
    for path, values in unknown.items():
        raise DataError(
            path,
            key,
            f"split labels must be 0/1/2 or 'train'/'val'/'test', but the file holds "
            f"{_listing([repr(v) for v in _sorted(values)])} (all values found: "
            f"{_listing([repr(v) for v in _sorted(seen[path])])})",
            "write 0 (train), 1 (val) or 2 (test) per event, or the strings 'train', 'val', "
            f"'test'; or set {setting} to the dataset that holds them",
        )
    cuts = _shard_cuts(info)
    runs = {name: _runs(codes == part, cuts) for name, part in _CODE.items()}
    found = _listing([repr(v) for v in _sorted(set().union(*seen.values()))])
    for name in ("train", "test"):
        if len(runs[name]) == 0:
            raise DataError(
                info.path,
                key,
                f"no event is marked {name!r} (or {_CODE[name]}); values found: {found}",
                f"mark the {name} events in {key!r}; every part needs events",
            )
    val: IntArray | None = runs["val"]
    if len(runs["val"]):
        _no_val_fraction(val_fraction, info.path, key, f"{key!r}, which marks events 'val',")
    else:
        val = None
    return _assemble(
        runs["train"],
        val,
        runs["test"],
        seed=seed,
        block_size=block_size,
        val_fraction=val_fraction,
        source=info.path,
        key=key,
    )


def _check_part_names(names: Sequence[str], what: str) -> None:
    unknown = sorted(set(names) - set(_PARTS))
    if unknown:
        raise ValueError(
            f"unknown split part(s) {', '.join(map(repr, unknown))} in {what}; "
            f"expected train, val and test"
        )
    missing = [name for name in ("train", "test") if name not in names]
    if missing:
        raise ValueError(
            f"{what} has no {' and no '.join(map(repr, missing))} part; a split needs both "
            "(val is optional)"
        )


def split_from_indices(
    info: DatasetInfo,
    keys: Mapping[str, str],
    *,
    seed: int,
    block_size: int,
    val_fraction: float | None = None,
) -> Split:
    """The split that lists of event indices define, one dataset per part.

    Indices are global event numbers (counting across all files in order) and are read from
    the first file. The test part is exactly the events listed for it. Events listed in no
    part are left out of the study.

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` found it.
        keys: Dataset of indices per part, e.g. ``{"train": "split/train", "test":
            "split/test"}``; ``"val"`` is optional.
        seed: Seed of the training order and of a carved validation part.
        block_size: Most events per training block.
        val_fraction: Share of the training events that validate when ``keys`` has no
            ``"val"`` (default 0.15); an error when it has.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: A dataset is missing, not integer, empty, or holds an index out of range,
            the same index twice, or one another part also lists; ``val_fraction`` is given
            with a val dataset; or the training part is too small to carve a validation part
            from.
        ValueError: Unknown part names, no train or test part, a bad ``block_size`` or
            ``val_fraction``.
    """
    _check_arguments(block_size, val_fraction)
    _check_part_names(list(keys), "keys")
    if "val" in keys:
        _no_val_fraction(val_fraction, info.files[0].path, keys["val"], "this dataset")
    path = info.files[0].path
    n = info.n_events
    codes = np.full(n, _LEFT_OUT, dtype=np.int8)
    owner = {_CODE[name]: keys[name] for name in _PARTS if name in keys}
    with _open_file(path, Layout()) as file:
        for name in _PARTS:
            if name not in keys:
                continue
            key, part = keys[name], _CODE[name]
            setting = f"data.split.indices.{name}"
            dataset = _get_dataset(file, path, key, f"{name} indices", setting=setting)
            if not np.issubdtype(dataset.dtype, np.integer) or dataset.ndim != 1:
                raise DataError(
                    path,
                    key,
                    f"{name} indices have dtype {dataset.dtype} and shape {dataset.shape}, "
                    "expected a list of integer event indices, shape (k,)",
                    f"write the indices of the {name} events as integers, or set {setting} to "
                    "the dataset that holds them",
                )
            if dataset.shape[0] == 0:
                raise DataError(
                    path,
                    key,
                    f"dataset of {name} indices is empty: the {name} part would have no events",
                    f"list the {name} events in {key!r}",
                )
            step = _rows_per_read(dataset)
            for start in range(0, dataset.shape[0], step):
                index = np.asarray(dataset[start : start + step]).astype(np.int64, copy=False)
                _check_indices(index, start, codes, part, owner, info, path, key)
                codes[index] = part
    cuts = _shard_cuts(info)
    runs = {name: _runs(codes == _CODE[name], cuts) for name in _PARTS if name in keys}
    return _assemble(
        runs["train"],
        runs.get("val"),
        runs["test"],
        seed=seed,
        block_size=block_size,
        val_fraction=val_fraction,
        source=path,
        key=keys["train"],
    )


def _check_indices(
    index: IntArray,
    start: int,
    codes: CodeArray,
    part: int,
    owner: dict[int, str],
    info: DatasetInfo,
    path: Path,
    key: str,
) -> None:
    """Refuse indices out of range, listed twice, or listed by another part too."""
    n = info.n_events
    bad = (index < 0) | (index >= n)
    if bad.any():
        at = int(np.argmax(bad))
        files = f" over its {len(info.files)} files" if len(info.files) > 1 else ""
        raise DataError(
            path,
            key,
            f"index {int(index[at])} (entry {start + at}) is out of range: the data set has "
            f"{n} events{files}, 0..{n - 1}",
            "write global event indices from 0, counting across the data files in order",
        )
    ordered = np.sort(index)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    earlier = codes[index]
    if len(twice) or (earlier == part).any():
        event = int(twice[0]) if len(twice) else int(index[np.argmax(earlier == part)])
        raise DataError(
            path,
            key,
            f"event index {event} is listed twice",
            "list every event once",
        )
    shared = earlier != _LEFT_OUT
    if shared.any():
        at = int(np.argmax(shared))
        other = owner[int(earlier[at])]
        raise DataError(
            path,
            key,
            f"event index {int(index[at])} is listed both here and in {other!r}",
            "give every event to one part only",
        )


def split_from_files(
    info: DatasetInfo,
    parts: Sequence[str],
    *,
    seed: int,
    block_size: int,
    val_fraction: float | None = None,
) -> Split:
    """The split of a data set that comes as separate files: file ``i`` is part ``parts[i]``.

    For data published as train/val/test files (or several files per part). The test part is
    exactly the events of the test files.

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` found it (its shards in
            the order of ``parts``).
        parts: One of "train", "val", "test" per file, in order.
        seed: Seed of the training order and of a carved validation part.
        block_size: Most events per training block.
        val_fraction: Share of the training events that validate when no file is "val"
            (default 0.15); an error when one is.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: ``parts`` does not name one part per file, a part's files hold no events,
            ``val_fraction`` is given with a val file, or the training part is too small to
            carve a validation part from.
        ValueError: Unknown part names, no train or test file, a bad ``block_size`` or
            ``val_fraction``.
    """
    _check_arguments(block_size, val_fraction)
    _check_part_names(list(parts), "parts")
    files = info.files
    if len(parts) != len(files):
        raise DataError(
            info.path,
            "",
            f"{len(parts)} split parts ({', '.join(parts)}) for {len(files)} data files",
            "give one part (train, val or test) per file of data.path, in the same order",
        )
    if "val" in parts:
        val_file = info.files[list(parts).index("val")].path
        _no_val_fraction(val_fraction, val_file, "", "this file, of part 'val',")
    runs: dict[str, list[list[int]]] = {name: [] for name in _PARTS}
    offset = 0
    for shard, name in zip(files, parts, strict=True):
        if shard.n_events:
            runs[name].append([offset, offset + shard.n_events])
        offset += shard.n_events
    for name in _PARTS:
        if name in parts and not runs[name]:
            empty = [str(s.path) for s, p in zip(files, parts, strict=True) if p == name]
            raise DataError(
                empty[0],
                "",
                f"the {name} files ({', '.join(empty)}) hold no events: the {name} part would "
                "be empty",
                f"give the {name} part a file with events",
            )
    blocks = {name: np.array(r, dtype=np.int64).reshape(-1, 2) for name, r in runs.items()}
    return _assemble(
        blocks["train"],
        blocks["val"] if "val" in parts else None,
        blocks["test"],
        seed=seed,
        block_size=block_size,
        val_fraction=val_fraction,
        source=info.path,
        key="",
    )


def _group_list(groups: Sequence[int | str] | None, name: str) -> list[int | str]:
    """Check the groups of one part (as the study gives them: ints or strings)."""
    if groups is None:
        return []
    if isinstance(groups, str | bytes) or not groups:
        raise ValueError(f"{name} groups must be a non-empty list, got {groups!r}")
    checked: list[int | str] = []
    for group in groups:
        if isinstance(group, bool) or not isinstance(group, int | str):
            raise ValueError(f"{name} group {group!r} must be an int or a string")
        checked.append(group)
    return checked


def _type_hint(group: int | str, present: list[Any]) -> str:
    """Why a group the study lists is missing, when it is a matter of quotes."""
    if isinstance(group, str) and group.strip().lstrip("-").isdigit() and int(group) in present:
        return f"; the dataset holds numbers, so write {group} without quotes"
    if isinstance(group, int) and str(group) in present:
        return f"; the dataset holds strings, so write '{group}' in quotes"
    return ""


def split_by_groups(
    info: DatasetInfo,
    key: str,
    *,
    train: Sequence[int | str],
    test: Sequence[int | str],
    val: Sequence[int | str] | None = None,
    seed: int,
    block_size: int,
    val_fraction: float | None = None,
) -> Split:
    """The split by groups of events: train on some groups, test on others.

    Each event has a group in dataset ``key`` (an int, or a string stored as str or bytes),
    e.g. the background model it was simulated with: the Galactic-Center task trains on three
    background models and tests on two others, to see whether a model generalises to one it
    never saw. Groups compare as the study gives them: ints to ints, strings to the decoded
    strings. The test part is exactly the events of the test groups. **Events of groups listed
    in no part are left out of the study.**

    Args:
        info: The data set, as :func:`~hpsearch.data.inspect_dataset` found it.
        key: Dataset with one group per event, in every file of the data set.
        train: Groups whose events train.
        test: Groups whose events test.
        val: Groups whose events validate; without them, ``val_fraction`` of the training
            events validate.
        seed: Seed of the training order and of a carved validation part.
        block_size: Most events per training block.
        val_fraction: Share of the training events that validate when ``val`` is not given
            (default 0.15); an error when it is.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: The dataset is missing or has not one value per event, a group listed
            never occurs or is listed in two parts (both list the groups present),
            ``val_fraction`` is given with ``val`` groups, or the training part is too small
            to carve a validation part from.
        ValueError: Empty or malformed group lists, a bad ``block_size`` or ``val_fraction``.
    """
    _check_arguments(block_size, val_fraction)
    listed = {
        "train": _group_list(train, "train"),
        "val": _group_list(val, "val"),
        "test": _group_list(test, "test"),
    }
    if val is not None:
        _no_val_fraction(val_fraction, info.path, key, f"the val groups {list(val)}")
    part_of: dict[tuple[type, Any], str] = {}
    twice: list[tuple[Any, str, str]] = []
    for name in _PARTS:
        for group in listed[name]:
            tag = (type(group), group)
            if tag in part_of:
                twice.append((group, part_of[tag], name))
            else:
                part_of[tag] = name

    def code(value: Any) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        name = part_of.get((type(value), value))
        return None if name is None else _CODE[name]

    codes, seen, _ = _codes_of(info, key, "groups", "data.groups.key", code)
    present = _sorted(set().union(*seen.values()))
    have = f"groups present in {key!r}: {_listing([repr(g) for g in present])}"
    for group, first, second in twice:
        raise DataError(
            info.path,
            key,
            f"group {group!r} is listed in both {first} and {second}; {have}",
            "give every group to one part only",
        )
    for name in _PARTS:
        for group in listed[name]:
            if group not in present:
                raise DataError(
                    info.path,
                    key,
                    f"{name} group {group!r} never occurs{_type_hint(group, present)}; {have}",
                    "list only groups that occur in the data",
                )
    cuts = _shard_cuts(info)
    runs = {name: _runs(codes == _CODE[name], cuts) for name in _PARTS}
    return _assemble(
        runs["train"],
        runs["val"] if val is not None else None,
        runs["test"],
        seed=seed,
        block_size=block_size,
        val_fraction=val_fraction,
        source=info.path,
        key=key,
    )
