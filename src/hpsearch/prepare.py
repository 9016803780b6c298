"""Everything checked before a study touches storage: data, objective file, metrics.

A study that fails here has run nothing and stored nothing; the CLI turns the
:class:`~hpsearch.errors.InputError` into exit code 2.

What is learned here once is handed to every trial rather than learned again in each: the
file's inspection travels inside the :class:`~hpsearch.objective.DataRef`, and the objective's
input statistics (computed from the training split) in :attr:`PreparedStudy.input_stats`.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console

from hpsearch.data import (
    DatasetInfo,
    Layout,
    Split,
    inspect_dataset,
    make_split,
    split_by_groups,
    split_from_files,
    split_from_indices,
    split_from_labels,
)
from hpsearch.errors import InputError
from hpsearch.objective import DataRef, is_module_name, load_objective
from hpsearch.seeding import derive_seed
from hpsearch.spec import (
    Choice,
    FileSplit,
    IndexSplit,
    LabelSplit,
    SearchSpace,
    Study,
    check_metrics,
)
from hpsearch.tasks import Task, custom_task

if TYPE_CHECKING:
    from hpsearch.models import Param


@dataclass(frozen=True)
class PreparedStudy:
    """A study whose task, data and objective were found and checked.

    Attributes:
        study: The validated study, its space fitted to the data (a task's default space keeps
            only the model families that read the data's input rank) and its task resolved.
        info: What the data holds.
        data: The picklable pointer to data, split and serving mode that every trial gets.
        objective: The imported objective module.
        task: The study's task (for a study's own objective file, the one built from it).
        objective_ref: What workers import to train a trial: a module name, or the objective
            file's absolute path (workers run in other directories).
        input_stats: What the objective's optional ``input_stats(data)`` hook computed from the
            training split, as plain JSON values (``{}`` without the hook). Every trial gets
            this same dict as ``TrialContext.input_stats``, and the Recorder stores it with the
            study, so all trials normalise their inputs alike and the record says how.
    """

    study: Study
    info: DatasetInfo
    data: DataRef
    objective: ModuleType
    task: Task
    objective_ref: str
    input_stats: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """What the Recorder stores with a new study besides its spec: task and data.

        The report reads ``table_metrics``; the data's files, shapes and split fingerprint let
        a later run (or reader) tell whether it looks at the same events.
        """
        info = self.info
        split = self.data.split()
        return {
            "task_info": self.task.describe(),
            "table_metrics": list(self.task.table_metrics),
            "data": {
                "files": [str(shard.path) for shard in info.files],
                "n_events": info.n_events,
                "event_shape": list(info.event_shape),
                "target": info.target,
                "target_shape": list(info.target_shape),
                "class_names": list(info.class_names) if info.class_names else None,
                "target_names": list(info.target_names),
                "split_fingerprint": split.fingerprint(),
                "split_sizes": split.sizes(),
                "max_events": self.data.max_events,
                "serve": self.data.serve,
                # The file's own record: for simulated data, the simulator, its version, seed
                # and parameters (the report's provenance shows them).
                "file_attrs": _small_attrs(info.attrs),
            },
        }


#: A file attribute longer than this (as JSON) is left out of the stored provenance: a user's
#: file may carry arrays as attributes, and each stored study would copy them.
_MAX_ATTR_CHARS = 20_000


def _small_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The file's attributes that are small enough to store with the study.

    An attribute holding JSON text (our simulators write their configuration so) is stored
    decoded, so the report shows its keys rather than escaped quotes.
    """
    kept = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        text = json.dumps(value, default=str)
        kept[key] = value if len(text) <= _MAX_ATTR_CHARS else f"<{len(text)} characters, not kept>"
    return kept


def simulate_hint(study: Study) -> str:
    """The command that would make the study's data file, or where to point data.path."""
    if study.task is None or study.task.simulator is None:
        return "point data.path at the HDF5 file"
    events = study.spec.data.simulate.events if study.spec.data.simulate else 10000
    return (
        f"run `hpsearch simulate {study.spec.task} --events {events} --out "
        f"{study.spec.data.main_path()}`, or point data.path at your own file"
    )


def ensure_data(study: Study, console: Console) -> None:
    """Simulate the study's data file if it is missing and the study says how."""
    data = study.spec.data
    if data.simulate is None or data.main_path().exists():
        return
    task = study.task
    simulator = task.load_simulator() if task is not None else None
    if task is None or simulator is None:
        raise InputError(
            study.source,
            "data.simulate",
            f"task {study.spec.task!r} has no simulator",
            "provide the data file at data.path, or remove data.simulate",
        )
    config = None
    if data.simulate.config:
        if task.simulator_config is None:
            raise InputError(
                study.source,
                "data.simulate.config",
                f"the {task.name} simulator takes no settings",
                "remove data.simulate.config",
            )
        config_class = getattr(simulator, task.simulator_config)
        config = config_class.from_dict(data.simulate.config, source=str(study.source))
    seed = data.simulate.seed
    if seed is None:
        seed = derive_seed(study.spec.seed, "simulate")
    path = data.main_path()
    console.print(
        f"[bold]Simulating[/] {data.simulate.events} {study.spec.task} events -> {path} "
        f"(seed {seed})"
    )
    simulator.simulate_to_file(path, data.simulate.events, seed, config, progress=True)


def prepare(study: Study, console: Console) -> PreparedStudy:
    """Find and check task, data and objective; simulate data when the study says how.

    Raises:
        InputError: Missing or malformed data, objective file, metric names, a split the data
            cannot give, or model families that cannot read the data.
    """
    ensure_data(study, console)
    objective, objective_ref, task = load_task(study, source=study.source)
    info, data = open_data(study, task, console, scan_finite=study.spec.data.scan_finite)
    space = fit_space(study, task, info, console)
    stats = compute_input_stats(objective, data, objective_ref)
    fitted = Study(study.source, study.spec, space, task)
    return PreparedStudy(
        study=fitted,
        info=info,
        data=data,
        objective=objective,
        task=task,
        objective_ref=objective_ref,
        input_stats=stats,
    )


def load_task(study: Study, *, source: str | Path) -> tuple[ModuleType, str, Task]:
    """The study's objective (imported), what workers import it by, and its task.

    Raises:
        InputError: The objective cannot be imported or lacks the protocol, or (for a task its
            own objective file defines) a metric it does not report.
    """
    objective_ref = objective_of(study)
    if not is_module_name(objective_ref):
        objective_ref = str(Path(objective_ref).resolve())
    objective = load_objective(objective_ref, source=source)
    task = study.task
    if task is None:
        task = custom_task(study.spec.task, objective, objective_ref)
        check_metrics(study.spec, task, study.source)
    return objective, objective_ref, task


def open_data(
    study: Study, task: Task, console: Console, *, scan_finite: bool
) -> tuple[DatasetInfo, DataRef]:
    """Inspect the study's data as its task reads it, split it and choose how to serve it.

    Raises:
        InputError: The data is missing or malformed, or cannot give the study's split.
    """
    spec = study.spec
    layout = Layout(spec.data.x_key, spec.data.y_key)
    info = inspect_dataset(
        data_files(study),
        layout,
        target=task.target,
        class_names=spec.data.class_names,
        target_names=spec.data.target_names,
        simulate_hint=simulate_hint(study),
        scan_finite=scan_finite,
    )
    data = DataRef(
        dataset=info,
        layout=layout,
        parts=make_study_split(study, info),
        max_events=spec.data.max_events,
        serve=serving(study, info, console),
        buffer_bytes=shuffle_buffer_bytes(study),
    )
    return info, data


def objective_of(study: Study) -> str:
    """What trains a trial: the study's ``objective_file``, else its task's objective.

    A module name (the generic tasks' objective lives inside the package) or a file path.
    """
    if study.spec.objective_file is not None or study.task is None:
        return str(study.spec.objective_path())
    return study.task.objective


def data_files(study: Study) -> list[Path]:
    """Every data file of the study, in order: one file, shards (listed or a glob), or parts.

    Raises:
        InputError: A glob that matches no file.
    """
    data = study.spec.data
    if isinstance(data.split, FileSplit):
        return data.split.paths()[0]
    paths = data.path if isinstance(data.path, list) else [data.main_path()]
    files: list[Path] = []
    for index, path in enumerate(paths):
        if not glob.has_magic(str(path)):
            files.append(path)
            continue
        matched = sorted(Path(p) for p in glob.glob(str(path)))
        if not matched:
            key = "data.path" if isinstance(data.path, Path) else f"data.path.{index}"
            raise InputError(
                study.source,
                key,
                f"the pattern {str(path)!r} matches no file (from {Path.cwd()})",
                "check the pattern; paths are relative to the directory hpsearch runs in",
            )
        files.extend(matched)
    return files


def make_study_split(study: Study, info: DatasetInfo) -> Split:
    """The study's split, of whichever kind its ``data.split`` or ``data.groups`` describes.

    Raises:
        InputError: The data cannot give that split (a dataset missing, a group that never
            occurs, an empty part), or a validation fraction for a split that has its own.
    """
    data = study.spec.data
    seed = derive_seed(study.spec.seed, "split")
    size = data.block_size
    split = data.split
    try:
        if data.groups is not None:
            groups = data.groups
            extra = {} if groups.val_fraction is None else {"val_fraction": groups.val_fraction}
            return split_by_groups(
                info,
                groups.key,
                train=groups.train,
                test=groups.test,
                val=groups.val,
                seed=seed,
                block_size=size,
                **extra,
            )
        if isinstance(split, LabelSplit):
            return split_from_labels(
                info, split.labels, seed=seed, block_size=size, val_fraction=split.val_fraction
            )
        if isinstance(split, IndexSplit):
            return split_from_indices(
                info,
                {str(k): v for k, v in split.indices.items()},
                seed=seed,
                block_size=size,
                val_fraction=split.val_fraction,
            )
        if isinstance(split, FileSplit):
            return split_from_files(
                info,
                split.paths()[1],
                seed=seed,
                block_size=size,
                val_fraction=split.val_fraction,
            )
        return make_split(info.n_events, seed=seed, fractions=split.fractions(), block_size=size)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(
            study.source,
            "data.groups" if data.groups is not None else "data.split",
            str(exc),
            "change the split so that every part gets events (see the README's data section)",
        ) from exc


#: Share of this machine's memory the data may take per worker when the budget is ``auto``.
AUTO_MEMORY_SHARE = 0.1


def memory_budget_bytes(study: Study) -> int:
    """The study's ``data.memory_budget_gb`` in bytes (``auto``: a tenth of physical memory)."""
    budget = study.spec.data.memory_budget_gb
    if budget == "auto":
        return int(AUTO_MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return int(float(budget) * 1e9)


def shuffle_buffer_bytes(study: Study) -> int:
    """A streaming reader's buffers: an eighth of the memory budget, within 64 MiB-1 GiB.

    A batch mixes the file's places that one buffer holds; with 0.5 MB detector-grid events a
    64 MiB buffer holds 128 events, so larger budgets buy better-mixed batches.
    """
    return int(min(max(memory_budget_bytes(study) / 8, 64 * 2**20), 2**30))


def serving(study: Study, info: DatasetInfo, console: Console) -> Literal["memory", "stream"]:
    """Serve from memory when the whole data set fits the budget, else stream it.

    Each worker process holds its own copy (loaded once, kept for every trial it runs), so the
    budget is per worker; streaming keeps memory bounded whatever the data's size.
    """
    size = info.n_events * info.event_bytes
    budget = memory_budget_bytes(study)
    if size <= budget:
        console.print(
            f"Serving {size / 1e9:.2g} GB of data from memory (budget {budget / 1e9:.2g} GB "
            "per worker)."
        )
        return "memory"
    console.print(
        f"Streaming {size / 1e9:.3g} GB of data from disk (more than the {budget / 1e9:.2g} GB "
        "memory budget, data.memory_budget_gb)."
    )
    return "stream"


#: The search-space choice that picks the model family (see :mod:`hpsearch.models`).
FAMILY_CHOICE = "model"


def model_input_rank(info: DatasetInfo) -> int:
    """Rank of one event as the models read it: ``(L,)`` series get a channel axis."""
    return len(info.event_shape) + (1 if len(info.event_shape) == 1 else 0)


def fit_space(study: Study, task: Task, info: DatasetInfo, console: Console) -> SearchSpace:
    """The study's space with only the model families that read the data's input rank.

    A task's own default space lists every family and is cut down, with a note; a space the
    user wrote that offers a family the data does not fit is an error, since the search would
    spend trials on models that cannot be built.

    Raises:
        InputError: The user's space offers a family that cannot read the data, or a model,
            optimizer or schedule hpsearch cannot build (see :func:`check_choices`).
    """
    fitted = _fit_to_rank(study, task, info, console)
    check_choices(study)  # after the rank: a family that cannot read the data says more
    return fitted


def _fit_to_rank(study: Study, task: Task, info: DatasetInfo, console: Console) -> SearchSpace:
    """:func:`fit_space`'s cut to the families that read the data's input rank."""
    space = study.space
    options = space.choice_options(FAMILY_CHOICE)
    if options is None or study.task is None:
        return space
    from hpsearch.models import FAMILIES, families_for_rank

    rank = model_input_rank(info)
    fitting = families_for_rank(rank)
    unfit = [o for o in options if o in FAMILIES and o not in fitting]
    if not unfit:
        return space
    if task.space is not None and Path(study.spec.space).resolve() == task.space.resolve():
        if not set(options) & set(fitting):
            raise InputError(
                study.source,
                "space",
                f"no model family of {study.spec.space} reads inputs of shape {info.event_shape}",
                f"write a space with one of {', '.join(fitting) or 'no family'}",
            )
        kept = ", ".join(o for o in options if o in fitting)
        console.print(
            f"Inputs of shape {info.event_shape}: searching {kept} "
            f"({', '.join(unfit)} cannot read them)."
        )
        return space.restrict_choice(FAMILY_CHOICE, fitting)
    family = FAMILIES[unfit[0]]
    raise InputError(
        space.source,
        f"params.{FAMILY_CHOICE}.options.{unfit[0]}",
        f"model family {unfit[0]!r} reads {family.accepts()}, but the data's events have shape "
        f"{info.event_shape}",
        f"remove the option; families for this data: {', '.join(fitting) or 'none'}",
    )


def _buildable() -> dict[str, Mapping[str, tuple[Param, ...]]]:
    """The choices of the families format, each option's parameters by option name."""
    from hpsearch.models import FAMILIES, OPTIMIZERS, SCHEDULES

    return {
        FAMILY_CHOICE: {name: family.params for name, family in FAMILIES.items()},
        "optimizer": OPTIMIZERS,
        "lr_schedule": SCHEDULES,
    }


def check_choices(study: Study) -> None:
    """Refuse a built-in task's space offering a model, optimizer or schedule it cannot build.

    The families format (a top-level ``model`` choice, see :mod:`hpsearch.models`) builds
    each trial's choice by name; an option name with a typo (``resnett``), or a parameter the
    option does not take, would otherwise pass every check and fail in every trial that drew
    it, after the search had spent its budget on them. Only a task hpsearch ships reads this
    format; a study's own objective file may give a ``model`` choice any meaning.

    Raises:
        InputError: An option hpsearch does not know, or one given a parameter it does not
            take or not given one it needs; the message names the space file and the key.
    """
    space = study.space
    if study.task is None or space.choice_options(FAMILY_CHOICE) is None:
        return
    for choice, table in _buildable().items():
        node = space.tree.get(choice)
        if not isinstance(node, Choice):
            continue
        for option, body in node.options.items():
            where = f"params.{choice}.options.{option}"
            if option not in table:
                raise InputError(
                    space.source,
                    where,
                    f"hpsearch has no {choice} {option!r}",
                    f"use one of {', '.join(table)}",
                )
            params = table[option]
            takes = [param.name for param in params]
            unknown = [key for key in body if key not in takes]
            if unknown:
                raise InputError(
                    space.source,
                    f"{where}.{unknown[0]}",
                    f"{choice} {option!r} takes no parameter {unknown[0]!r}",
                    f"use its parameters: {', '.join(takes) or 'none'}",
                )
            missing = [param.name for param in params if param.required and param.name not in body]
            if missing:
                raise InputError(
                    space.source,
                    where,
                    f"{choice} {option!r} needs {', '.join(missing)}, which the space lacks",
                    f"add {', '.join(missing)} under it (searched or constant)",
                )


def compute_input_stats(objective: ModuleType, data: DataRef, source: str | Path) -> dict[str, Any]:
    """Call the objective's ``input_stats(data)`` hook, if it has one, and check its result.

    The result goes through JSON and back, so trials use exactly the values that storage keeps
    (tuples become lists, numpy scalars and arrays plain numbers and lists); NaN and infinity
    are refused, since a NaN scale would make every trial fail.

    Args:
        objective: The imported objective module.
        data: The study's data; the hook reads its training split.
        source: The objective file, for error messages.

    Returns:
        The statistics as plain JSON values, or ``{}`` when the objective has no hook.

    Raises:
        InputError: The hook failed (a :class:`~hpsearch.errors.DataError` from reading the
            data passes through as it is), or returned something other than a JSON object of
            finite values.
    """
    hook = getattr(objective, "input_stats", None)
    if hook is None:
        return {}
    try:
        stats = hook(data)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            source,
            "input_stats",
            f"computing the input statistics failed: {type(exc).__name__}: {exc}",
            "fix the objective's `input_stats(data)` so that it runs on the study's data",
        ) from exc
    if not isinstance(stats, dict) or not all(isinstance(k, str) for k in stats):
        raise InputError(
            source,
            "input_stats",
            f"`input_stats(data)` returned {type(stats).__name__}, not a dict with str keys",
            'return a dict of plain values, e.g. {"amplitude_scale": 812.0}',
        )
    try:
        plain: dict[str, Any] = json.loads(json.dumps(stats, allow_nan=False, default=_tolist))
    except (TypeError, ValueError) as exc:
        raise InputError(
            source,
            "input_stats",
            f"`input_stats(data)` returned values that are not finite JSON values: {exc}",
            "return plain floats, ints, strings and lists (use float(x) for numpy numbers), "
            "all finite",
        ) from exc
    return plain


def _tolist(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays (anything with ``tolist``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
