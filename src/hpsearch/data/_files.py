"""Opening and checking HDF5 data files: what a study's data is, before any trial reads it.

:func:`inspect_dataset` validates a user's data once, in the driver, before any trial starts:
one file or several (shards of one data set), class labels or regression targets. It raises
:class:`~hpsearch.errors.DataError` (exit code 2) naming the file, the dataset and the fix.
Scans over the data (labels, non-finite values) read bounded chunks, so the check itself never
needs more than ~64 MiB whatever the files' size.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from hpsearch.errors import DataError

__all__ = ["DatasetInfo", "Layout", "Shard", "TargetKind", "inspect_dataset"]

IntArray = npt.NDArray[np.int64]

# Upper bound on the bytes a validation scan reads in one go; bounds its memory for any file size.
_SCAN_BYTES = 64 * 2**20
# HDF5 chunk cache per open reader. The 1 MiB default is smaller than a typical chunk of long
# waveforms, and a chunk that does not fit the cache is decompressed again for every batch.
_CHUNK_CACHE_BYTES = 32 * 2**20
# How many datasets a "dataset missing" message lists before it cuts the list short.
_MAX_LISTED = 20


@dataclass(frozen=True)
class Layout:
    """Names of the datasets that hold the events and their labels.

    Our simulator writes ``/waveforms`` and ``/labels``; a user's file may use other names,
    which the study declares here instead of rewriting a file that may be 100 GB.

    Attributes:
        x_key: Dataset of the inputs, shape ``(n_events, *event_shape)``, floating point.
        y_key: Dataset of the targets: class labels, shape ``(n_events,)``, integer or bool;
            or values to regress, shape ``(n_events,)`` or ``(n_events, k)``, float or int.
    """

    x_key: str = "waveforms"
    y_key: str = "labels"


#: What the targets are: class indices, or float values to regress.
TargetKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Shard:
    """One file of a data set that spans several (shards, or separate train/val/test files).

    Attributes:
        path: Absolute path of the file.
        n_events: Its number of events. Event ``i`` of the data set is event ``i - offset`` of
            the shard whose range holds it, shards counted in order.
    """

    path: Path
    n_events: int


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`inspect_dataset` learned about a data set that passed every check.

    Attributes:
        path: Absolute path of the (first) file, so that workers with another working directory
            (Ray moves trials into their own directories) still find it.
        n_events: Number of events (rows of x and y), over all shards.
        event_shape: Shape of one event, e.g. ``(n_samples,)`` or ``(n, n, t, 2)``.
        x_dtype: Numpy name of the stored input dtype, e.g. ``"float32"``.
        y_dtype: Numpy name of the stored target dtype, e.g. ``"int8"``.
        n_classes: Classification: the number of classes (``len(class_names)`` when names are
            given, else max label + 1). Regression: 0.
        attrs: The (first) file's root attributes as plain Python values (str, int, float,
            list).
        target: Whether targets are class indices or values to regress.
        target_shape: Shape of one event's target: ``()`` for a class index or a single value,
            ``(k,)`` for k regression targets.
        class_names: Names of the classes, by label value, when the study or the file gives
            them.
        target_names: Regression: one name per target (from the study, the file's
            ``target_names`` attribute, or ``target_0``, ...). Classification: empty.
        shards: Every file in order, with its event count; one entry for a single file. Empty
            only in a DatasetInfo made by hand, which then means the single file ``path``.
    """

    path: Path
    n_events: int
    event_shape: tuple[int, ...]
    x_dtype: str
    y_dtype: str
    n_classes: int
    attrs: dict[str, Any] = field(default_factory=dict)
    target: TargetKind = "classification"
    target_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] = ()
    shards: tuple[Shard, ...] = ()

    @property
    def files(self) -> tuple[Shard, ...]:
        """The shards, or the single file ``path`` for a DatasetInfo made without them."""
        return self.shards or (Shard(self.path, self.n_events),)

    @property
    def n_targets(self) -> int:
        """Regression targets per event (1 for a single value); 1 for classification."""
        return math.prod(self.target_shape) if self.target_shape else 1

    @property
    def event_bytes(self) -> int:
        """Bytes one event takes in memory as served: float32 inputs, int64 or float32 targets."""
        y_bytes = 8 if self.target == "classification" else 4 * self.n_targets
        return 4 * math.prod(self.event_shape) + y_bytes


# --------------------------------------------------------------------------------------------
# Opening and checking a file
# --------------------------------------------------------------------------------------------


def _open_file(
    path: Path,
    layout: Layout,
    *,
    simulate_hint: str | None = None,
    **kwargs: Any,
) -> h5py.File:
    """Open ``path`` read-only, or raise a DataError that says why not and what to do."""
    wanted = f"datasets {layout.x_key!r} and {layout.y_key!r}"
    if not path.exists():
        fix = simulate_hint or "set data.path in the study file to an existing HDF5 file"
        raise DataError(path, "", f"file not found (expected an HDF5 file with {wanted})", fix)
    if not path.is_file():
        raise DataError(
            path,
            "",
            f"is a directory, not an HDF5 file with {wanted}",
            "set data.path in the study file to the HDF5 file itself",
        )
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise DataError(path, "", f"cannot be read: {err}", "check the file's permissions") from err
    if not is_hdf5:
        raise DataError(
            path,
            "",
            f"is not an HDF5 file (expected one with {wanted})",
            "point data.path at an HDF5 file; convert other formats with h5py first",
        )
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as err:
        raise DataError(
            path,
            "",
            f"cannot be opened as HDF5: {err}",
            "check that the file is complete (not still being written) and readable",
        ) from err


def _list_datasets(file: h5py.File) -> list[str]:
    """Names (with shape and dtype) of every dataset in ``file``, for error messages."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"{name!r} {obj.dtype} {obj.shape}")

    file.visititems(visit)
    return found


def _get_dataset(
    file: h5py.File,
    path: Path,
    key: str,
    role: str,
    *,
    setting: str | None = None,
) -> h5py.Dataset:
    """Return dataset ``key``, or raise a DataError listing the datasets the file does have.

    Args:
        file: The open file.
        path: Its path, for the message.
        key: The dataset's name inside the file.
        role: What the dataset holds, e.g. ``"inputs"``, ``"labels"`` or ``"split labels"``.
        setting: The study setting that names the dataset; by default ``data.x_key`` for the
            inputs and ``data.y_key`` for anything else.
    """
    obj = file.get(key)
    if isinstance(obj, h5py.Dataset):
        return obj
    names = _list_datasets(file)
    if names:
        listed = ", ".join(names[:_MAX_LISTED])
        if len(names) > _MAX_LISTED:
            listed += f", ... ({len(names) - _MAX_LISTED} more)"
        have = f"the file has: {listed}"
    else:
        have = "the file has no datasets at all"
    what = "is a group, not a dataset" if obj is not None else "not found"
    if setting is None:
        setting = "data.x_key" if role == "inputs" else "data.y_key"
    raise DataError(
        path,
        key,
        f"dataset of the {role} {what}; {have}",
        f"set {setting} in the study file to the dataset that holds the {role}",
    )


#: Event ranks the models accept: (L,), (L, C), (H, W, C) and (N, N, T, C).
_MAX_EVENT_RANK = 4


def _check_structure(
    path: Path,
    layout: Layout,
    x: h5py.Dataset,
    y: h5py.Dataset,
    target: TargetKind = "classification",
) -> None:
    """Check dtypes, dimensions and lengths: metadata only, nothing is read."""
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            path,
            layout.x_key,
            f"inputs have dtype {x.dtype}, expected floating point",
            "write the inputs as float32 (e.g. `x.astype('float32')`) when creating the file",
        )
    if target == "classification":
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            problem = f"labels have dtype {y.dtype}, expected integer class indices"
            if np.issubdtype(y.dtype, np.floating):
                problem += "; `task: regress` is for float targets"
            raise DataError(
                path,
                layout.y_key,
                problem,
                "write the labels as integers 0..n_classes-1 (e.g. int8) when creating the file, "
                "or regress the values instead of classifying them",
            )
    elif not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(
            path,
            layout.y_key,
            f"targets have dtype {y.dtype}, expected numbers (float or int) to regress",
            "write the targets as float32 (e.g. `y.astype('float32')`) when creating the file",
        )
    if x.ndim < 2 or 0 in x.shape[1:]:
        raise DataError(
            path,
            layout.x_key,
            f"inputs have shape {x.shape}, expected (n_events, n_samples, ...)",
            "store one row per event, e.g. shape (n_events, n_samples)",
        )
    if x.ndim - 1 > _MAX_EVENT_RANK:
        raise DataError(
            path,
            layout.x_key,
            f"inputs have shape {x.shape}: events of rank {x.ndim - 1}, but events of rank 1 "
            "to 4 are supported: (n_events, L), (n_events, L, C), (n_events, H, W, C) or "
            "(n_events, N, N, T, C)",
            "merge axes when writing the file, e.g. x.reshape(n_events, H, W, -1) to fold "
            "extra axes into the channels",
        )
    what = "labels" if target == "classification" else "targets"
    if target == "classification" and y.ndim != 1:
        raise DataError(
            path,
            layout.y_key,
            f"labels have shape {y.shape}, expected (n_events,)",
            "store one class index per event (for one-hot labels, store their argmax)",
        )
    if target == "regression" and (y.ndim not in (1, 2) or 0 in y.shape[1:]):
        raise DataError(
            path,
            layout.y_key,
            f"targets have shape {y.shape}, expected (n_events,) or (n_events, n_targets)",
            "store one row of targets per event; flatten extra axes with y.reshape(n_events, -1)",
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(
            path,
            f"{layout.x_key}, {layout.y_key}",
            f"{layout.x_key!r} has {x.shape[0]} events but {layout.y_key!r} has {y.shape[0]}",
            f"write exactly one row of {what} per event",
        )


def _plain(value: Any) -> Any:
    """Turn an HDF5 attribute into a plain Python value (for JSON reports and comparisons)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, h5py.Empty):
        return None
    return value


def _names_attr(path: Path, attrs: dict[str, Any], name: str) -> list[str] | None:
    """Root attribute ``name`` (a JSON list, or an array of strings), if the file has it."""
    if name not in attrs:
        return None
    raw = attrs[name]
    names: Any = raw
    if isinstance(raw, str):
        try:
            names = json.loads(raw)
        except json.JSONDecodeError:
            names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        per = "label value" if name == "class_names" else "target column"
        raise DataError(
            path,
            f"attrs[{name!r}]",
            f"root attribute {name} is {raw!r}, expected a JSON list of strings",
            f'write it as json.dumps(["name0", "name1", ...]), one name per {per}',
        )
    return names


def _class_names(path: Path, attrs: dict[str, Any]) -> list[str] | None:
    """The ``class_names`` root attribute (a JSON list, or an array of strings), if present."""
    return _names_attr(path, attrs, "class_names")


def _given_names(names: Sequence[str] | None, argument: str) -> tuple[str, ...] | None:
    """Check names the study gives (a caller's argument, so a ValueError when malformed)."""
    if names is None:
        return None
    if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{argument} must be a non-empty list of strings, got {names!r}")
    return tuple(names)


def _resolve_names(
    given: tuple[str, ...] | None,
    in_files: list[tuple[Path, list[str]]],
    attr: str,
) -> tuple[tuple[str, ...] | None, str]:
    """The names to use and where they come from: the study's, else the files' (which agree).

    The study may rename what a file calls its classes or targets, but not change how many
    there are: a different count means the study and the file disagree on what the labels mean.
    """
    if given is not None:
        for path, names in in_files:
            if len(names) != len(given):
                raise DataError(
                    path,
                    f"attrs[{attr!r}]",
                    f"the file's {attr} has {len(names)} names {names} but the study gives "
                    f"{len(given)}: {list(given)}",
                    f"give the study as many {attr} as the file has, in label order, or drop "
                    f"them from the study to use the file's",
                )
        return given, f"the study's {attr}"
    if not in_files:
        return None, ""
    first_path, first = in_files[0]
    for path, names in in_files[1:]:
        if names != first:
            raise DataError(
                path,
                f"attrs[{attr!r}]",
                f"{attr} {names} differ from {first} in {first_path}; every file of one data "
                "set must name its labels alike",
                f"write the same {attr} into every file, or give {attr} in the study",
            )
    return tuple(first), f"the file's {attr} attribute"


def _rows_per_read(dataset: h5py.Dataset) -> int:
    """Rows per scan read: as many as fit ``_SCAN_BYTES``, aligned to whole HDF5 chunks."""
    row_bytes = dataset.dtype.itemsize * math.prod(dataset.shape[1:])
    rows = max(1, _SCAN_BYTES // max(1, row_bytes))
    chunks = dataset.chunks
    if chunks is not None:
        # Whole chunks only, so that no chunk is decompressed twice.
        rows = max(chunks[0], rows // chunks[0] * chunks[0])
    return int(rows)


def _at_event(event: int, offset: int) -> str:
    """``event 7`` of a file, plus its global index when the file is not the data set's first."""
    return f"event {event}" + (f" (event {event + offset} of the data set)" if offset else "")


def _listing(values: Sequence[Any], total: int | None = None) -> str:
    """At most ``_MAX_LISTED`` values, comma-separated, saying how many more were left out."""
    total = len(values) if total is None else total
    text = ", ".join(str(v) for v in values[:_MAX_LISTED])
    if total > _MAX_LISTED:
        text += f", ... ({total - _MAX_LISTED} more)"
    return text


def _missing_classes(present: list[int], highest: int) -> tuple[list[int], int]:
    """The first missing values of ``0..highest`` (at most ``_MAX_LISTED``) and their count.

    Walks the sorted labels present rather than ``range(highest + 1)``, so a stray huge label
    costs nothing.
    """
    missing: list[int] = []
    expect = 0
    for value in present:
        while expect < value and len(missing) < _MAX_LISTED:
            missing.append(expect)
            expect += 1
        expect = value + 1
    return missing, highest + 1 - len(present)


def _scan_labels(
    files: Sequence[Shard],
    layout: Layout,
    class_names: tuple[str, ...] | None,
    names_from: str = "",
) -> int:
    """Check the labels of every file and return ``n_classes``.

    Without class names the labels must be exactly ``0..k-1`` with every class present: a file
    numbered from 1, or with a gap, would otherwise train a model with a class that never
    occurs (and a metric averaged over it). With names, any label ``0..len(names)-1`` is
    accepted and classes may be absent (a test file may hold only some of them).
    """
    key = layout.y_key
    limit = len(class_names) if class_names is not None else None
    present: set[int] = set()
    offset = 0
    for shard in files:
        with _open_file(shard.path, layout) as file:
            y = _get_dataset(file, shard.path, key, "labels")
            step = _rows_per_read(y)
            for start in range(0, y.shape[0], step):
                labels = np.asarray(y[start : start + step]).astype(np.int64, copy=False)
                bad = labels < 0 if limit is None else (labels < 0) | (labels >= limit)
                if bad.any():
                    first = int(np.argmax(bad))
                    if limit is None:
                        expected = "labels must be >= 0"
                        fix = "write labels as class indices 0..n_classes-1"
                    else:
                        expected = f"expected 0..{limit - 1} ({limit} class names, {names_from})"
                        fix = (
                            f"write labels as class indices 0..{limit - 1}, matching the class "
                            "names, or give one class name per label value"
                        )
                    raise DataError(
                        shard.path,
                        key,
                        f"label {int(labels[first])} at {_at_event(start + first, offset)}; "
                        f"{expected}",
                        fix,
                    )
                present.update(np.unique(labels).tolist())
        offset += shard.n_events
    if limit is not None:
        return limit
    if not present:
        return 0
    ordered = sorted(present)
    highest = ordered[-1]
    missing, n_missing = _missing_classes(ordered, highest)
    if n_missing:
        over = f" (over all {len(files)} files)" if len(files) > 1 else ""
        names_fix = (
            "or give class names (data.class_names in the study, or the file's class_names "
            f"attribute), one per label value 0..{highest}, so that absent classes are allowed"
        )
        if missing == list(range(ordered[0])):
            # Numbered from 1 (or 2, ...) but otherwise complete: the common off-by-one.
            classes = (
                "class 0 never occurs"
                if ordered[0] == 1
                else (f"classes {_listing(missing, n_missing)} never occur")
            )
            problem = (
                f"labels run {ordered[0]}..{highest}{over}: {classes}; hpsearch numbers classes "
                "from 0"
            )
            fix = f"subtract {ordered[0]} from the labels when writing the file, {names_fix}"
        else:
            which = (
                f"class {missing[0]}"
                if n_missing == 1
                else f"classes {_listing(missing, n_missing)}"
            )
            verb = "occurs" if n_missing == 1 else "occur"
            problem = f"labels run 0..{highest}{over}, but {which} of 0..{highest} never {verb}"
            fix = (
                "renumber the labels 0..k-1 without gaps (e.g. "
                f"np.unique(y, return_inverse=True)[1]), {names_fix}"
            )
        raise DataError(files[0].path, key, problem, fix)
    return highest + 1


def _scan_finite(
    path: Path, key: str, x: h5py.Dataset, *, offset: int = 0, targets: bool = False
) -> None:
    """Check every value of ``x`` is finite, reading at most ``_SCAN_BYTES`` at a time."""
    step = _rows_per_read(x)
    for start in range(0, x.shape[0], step):
        values = np.asarray(x[start : start + step])
        if not np.isfinite(values).all():
            rows = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
            event = start + int(np.argmin(rows))
            raise _non_finite_error(path, key, event, offset=offset, targets=targets)


def _non_finite_error(
    path: Path, key: str, event: int, *, offset: int = 0, targets: bool = False
) -> DataError:
    what = "target" if targets else "value"
    array = "y" if targets else "x"
    return DataError(
        path,
        key,
        f"non-finite {what} (NaN or inf) in {_at_event(event, offset)}",
        "fix or drop that event when writing the file (e.g. with "
        f"np.isfinite({array}).reshape(len({array}), -1).all(axis=1))",
    )


def _as_paths(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """One path or several, made absolute; a file listed twice is an error."""
    given = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not given:
        raise ValueError("no data file given: pass one path or a non-empty list of paths")
    resolved: list[Path] = []
    for item in given:
        one = Path(item).expanduser().resolve()
        if one in resolved:
            raise DataError(
                one,
                "",
                "is listed twice among the data files; its events would count twice",
                "list every file of the data set once",
            )
        resolved.append(one)
    return resolved


def _kind(dtype: np.dtype[Any]) -> str:
    """Dtype family that must agree between shards: float, or integer (bool included)."""
    return "float" if np.issubdtype(dtype, np.floating) else "integer"


def inspect_dataset(
    path: str | Path | Sequence[str | Path],
    layout: Layout = Layout(),  # frozen, so one shared default is safe
    *,
    target: TargetKind = "classification",
    class_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
    simulate_hint: str | None = None,
    min_events: int = 3,
    scan_finite: bool = True,
) -> DatasetInfo:
    """Check a user's data before any trial uses it, and describe it.

    Every problem is a :class:`~hpsearch.errors.DataError` naming the file, the dataset and the
    fix, so a bad file stops the study at once with exit code 2 instead of failing in every
    trial of a search. Nothing is loaded whole: the label and finite-value scans read bounded
    chunks, one file at a time.

    Classification labels must be integers ``0..k-1`` with every class present, unless class
    names (from the study or the file) say there are ``k`` classes, some possibly absent: a
    file numbered from 1 is the commonest mistake, and training on it would silently add an
    empty class. Regression targets are numbers, one or ``k`` per event, all finite (always
    scanned, since one NaN target turns every loss into NaN).

    Args:
        path: The HDF5 file, or several files that are shards of one data set, in order: event
            ``i`` of the data set counts across them.
        layout: Names of the input and target datasets (the same in every file).
        target: ``"classification"`` (integer class indices) or ``"regression"`` (numbers).
        class_names: Classification: names of the classes by label value, from the study;
            they override the file's ``class_names`` attribute, whose length must match.
        target_names: Regression: one name per target column, from the study; else the file's
            ``target_names`` attribute, else ``target_0``, ... (or the dataset name for one).
        simulate_hint: Fix to show when the file is missing, e.g. ``"run `hpsearch simulate
            xgamma --out PATH`"`` for studies whose data our simulator makes.
        min_events: Fewest events accepted (the default 3 gives each split part one event).
        scan_finite: Scan all inputs for NaN/inf. On a 100 GB file the scan reads 100 GB, so it
            can be turned off; :class:`BatchReader` still checks every batch it reads.
            Regression targets are scanned either way (they are small).

    Returns:
        A :class:`DatasetInfo` with the absolute path of the first file, every shard, sizes,
        dtypes, the target kind and shape, class or target names and the first file's
        attributes.

    Raises:
        DataError: A file is missing or not HDF5, a dataset is missing or has the wrong dtype
            or shape, x and y differ in length, the files disagree, there are too few events,
            a label is out of range or a class is missing, class or target names do not fit,
            a target is NaN or inf, or (with ``scan_finite``) an input is NaN or inf.
        ValueError: An unknown ``target``, an empty list of paths, or names that are not a
            non-empty list of strings (or given for the other target kind).
    """
    if target not in ("classification", "regression"):
        raise ValueError(f"target must be 'classification' or 'regression', got {target!r}")
    if target == "regression" and class_names is not None:
        raise ValueError("class_names are for classification; give target_names to regress")
    if target == "classification" and target_names is not None:
        raise ValueError("target_names are for regression; give class_names to classify")
    study_classes = _given_names(class_names, "class_names")
    study_targets = _given_names(target_names, "target_names")
    names_attr = "class_names" if target == "classification" else "target_names"
    y_role = "labels" if target == "classification" else "targets"
    paths = _as_paths(path)

    shards: list[Shard] = []
    file_names: list[tuple[Path, list[str]]] = []
    attrs: dict[str, Any] = {}
    x_dtypes: list[np.dtype[Any]] = []
    y_dtypes: list[np.dtype[Any]] = []
    event_shape: tuple[int, ...] = ()
    target_shape: tuple[int, ...] = ()
    for index, resolved in enumerate(paths):
        with _open_file(resolved, layout, simulate_hint=simulate_hint) as file:
            x = _get_dataset(file, resolved, layout.x_key, "inputs")
            y = _get_dataset(file, resolved, layout.y_key, y_role)
            _check_structure(resolved, layout, x, y, target)
            shape = tuple(int(d) for d in x.shape[1:])
            y_shape = tuple(int(d) for d in y.shape[1:])
            file_attrs = {str(k): _plain(v) for k, v in file.attrs.items()}
            if index == 0:
                attrs, event_shape, target_shape = file_attrs, shape, y_shape
            else:
                _check_agrees(resolved, layout, paths[0], (shape, event_shape), "x")
                _check_agrees(resolved, layout, paths[0], (y_shape, target_shape), "y")
                if _kind(y.dtype) != _kind(y_dtypes[0]):
                    raise DataError(
                        resolved,
                        layout.y_key,
                        f"{'labels' if target == 'classification' else 'targets'} have dtype "
                        f"{y.dtype} here but {y_dtypes[0]} in {paths[0]}; every file of one "
                        "data set must agree",
                        f"write {layout.y_key!r} with the same dtype into every file",
                    )
            names = _names_attr(resolved, file_attrs, names_attr)
            if names is not None:
                file_names.append((resolved, names))
            x_dtypes.append(x.dtype)
            y_dtypes.append(y.dtype)
            shards.append(Shard(resolved, int(x.shape[0])))

    n_events = sum(shard.n_events for shard in shards)
    if n_events < min_events:
        files = f" in {len(paths)} files" if len(paths) > 1 else ""
        raise DataError(
            paths[0],
            layout.x_key,
            f"only {n_events} events{files}, at least {min_events} needed",
            "use a file with more events (one per train/val/test part at the very least)",
        )

    if target == "classification":
        classes, names_from = _resolve_names(study_classes, file_names, "class_names")
        targets: tuple[str, ...] = ()
    else:
        given, _ = _resolve_names(study_targets, file_names, "target_names")
        classes, names_from = None, ""
        n_targets = target_shape[0] if target_shape else 1
        if given is None:
            given = (
                (layout.y_key,)
                if not target_shape
                else tuple(f"target_{i}" for i in range(n_targets))
            )
        if len(given) != n_targets:
            layout_of = f"(n_events, {target_shape[0]})" if target_shape else "(n_events,)"
            raise DataError(
                paths[0],
                layout.y_key,
                f"{len(given)} target names {list(given)} for {n_targets} target(s) of shape "
                f"{layout_of}",
                "give one target name per column of the targets, in column order",
            )
        targets = given

    # The scans read every value, so they come after every cheap check of every file.
    scan_targets = target == "regression" and any(_kind(d) == "float" for d in y_dtypes)
    if scan_finite or scan_targets:
        offset = 0
        for shard in shards:
            with _open_file(shard.path, layout) as file:
                if scan_finite:
                    x = _get_dataset(file, shard.path, layout.x_key, "inputs")
                    _scan_finite(shard.path, layout.x_key, x, offset=offset)
                if scan_targets:
                    y = _get_dataset(file, shard.path, layout.y_key, y_role)
                    _scan_finite(shard.path, layout.y_key, y, offset=offset, targets=True)
            offset += shard.n_events

    n_classes = 0
    if target == "classification":
        n_classes = _scan_labels(shards, layout, classes, names_from)

    return DatasetInfo(
        path=paths[0],
        n_events=n_events,
        event_shape=event_shape,
        x_dtype=str(np.result_type(*x_dtypes)),
        y_dtype=str(np.result_type(*y_dtypes)),
        n_classes=n_classes,
        attrs=attrs,
        target=target,
        target_shape=target_shape,
        class_names=classes,
        target_names=targets,
        shards=tuple(shards),
    )


def _check_agrees(
    path: Path,
    layout: Layout,
    first: Path,
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    which: Literal["x", "y"],
) -> None:
    """Raise a DataError when a shard's event (or target) shape differs from the first file's."""
    shape, expected = shapes
    if shape == expected:
        return
    key = layout.x_key if which == "x" else layout.y_key
    what = "events" if which == "x" else "targets"
    raise DataError(
        path,
        key,
        f"{what} have shape {shape} here but {expected} in {first}; every file of one data set "
        "must agree",
        f"write {key!r} with the same shape per event into every file, or use the files in "
        "separate studies",
    )
