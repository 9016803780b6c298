"""What an objective file (``objectives/TASK.py``) sees, and how hpsearch loads one.

An objective file trains and scores one trial. It defines::

    METRICS = ("val_accuracy", "train_seconds", ...)   # what it reports, for validation
    def train(ctx: TrialContext) -> None: ...           # calls ctx.report(...) once per epoch

and optionally::

    def input_stats(data: DataRef) -> dict[str, Any]: ...   # e.g. {"amplitude_scale": 812.0}

``input_stats`` computes what the inputs are normalised with (scales, offsets, the settings
they assume) from the study's **training split** (``data.split().train``). The driver calls it
once per study, before any trial, and every trial gets the same dict as ``ctx.input_stats``;
the Recorder stores it with the study as provenance. Why not in each trial: statistics taken
per trial (from one shuffled batch, say) vary with the trial's seed and batch size, so
trials would differ in more than their parameters. The dict must be JSON-serialisable (plain
floats, ints, strings and lists) and should depend only on the data and the split, never on a
trial; for files too large to read whole, take a fixed sample of the training split (e.g. its
first blocks, which the seeded split already spreads over the file). ``train`` should fall
back to ``input_stats(ctx.data)`` when ``ctx.input_stats`` is empty, so that it also runs when
called directly.

The same file runs under Ray (``ctx.report`` is ``ray.tune.report``) and in a plain test
(``ctx.report`` appends to a list), so objectives are testable without a cluster.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from hpsearch.errors import HpsearchError, InputError

if TYPE_CHECKING:
    import numpy as np

    from hpsearch.data import BatchReader, DatasetInfo, EventSource, Layout, Split, TargetKind

#: Every objective's reports carry these; the Recorder and the report rely on them.
REQUIRED_METRICS = ("train_seconds",)


class TrialFailed(HpsearchError):
    """Raised by an objective for a trial that cannot go on (NaN loss, say)."""


@dataclass(frozen=True)
class DataRef:
    """A picklable pointer to a study's data and its split, sent to every trial.

    Everything here was learned once, in the driver: the file's inspection (shapes, target
    kind, classes), the split (which can take a scan of a label or group dataset to make) and
    how the data is served. A trial neither opens the file to learn its layout nor reads a
    label again; it only reads the batches it trains on.

    Attributes:
        dataset: What :func:`~hpsearch.data.inspect_dataset` found: files, shapes, targets.
        layout: Names of the input and target datasets.
        parts: The study's train/validation/test split, the same for every trial.
        max_events: Cap on the training events a trial reads, or None.
        serve: ``memory``: every worker process loads the data once and keeps it for the
            trials it runs; ``stream``: batches are read from disk, memory bounded whatever the
            file's size. The driver chooses by the study's ``data.memory_budget_gb``.
        buffer_bytes: Event data a streaming training reader holds (its shuffle buffers).
    """

    dataset: DatasetInfo = field(repr=False)
    layout: Layout
    parts: Split = field(repr=False)
    max_events: int | None = None
    serve: Literal["memory", "stream"] = "stream"
    buffer_bytes: int = 64 * 2**20

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        x_key: str = "waveforms",
        y_key: str = "labels",
        fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        block_size: int = 32,
        split_seed: int = 0,
        *,
        max_events: int | None = None,
        target: TargetKind = "classification",
        serve: Literal["memory", "stream"] = "stream",
    ) -> DataRef:
        """A DataRef over one file with a seeded fractional split, for code outside a study.

        Inspects the file (without the finite scan), as :func:`hpsearch.prepare.prepare`
        does for a study.
        """
        from hpsearch.data import Layout, inspect_dataset, make_split

        layout = Layout(x_key, y_key)
        info = inspect_dataset(path, layout, target=target, scan_finite=False)
        split = make_split(
            info.n_events, seed=split_seed, fractions=fractions, block_size=block_size
        )
        return cls(info, layout, split, max_events=max_events, serve=serve)

    @property
    def path(self) -> str:
        """The (first) data file, absolute."""
        return str(self.dataset.path)

    @property
    def x_key(self) -> str:
        """Dataset of the inputs."""
        return self.layout.x_key

    @property
    def y_key(self) -> str:
        """Dataset of the targets."""
        return self.layout.y_key

    def info(self) -> DatasetInfo:
        """What the data holds, as the driver's inspection found it."""
        return self.dataset

    def split(self) -> Split:
        """The study's train/validation/test split: the same for every trial and baseline."""
        return self.parts

    def source(self, *, stream: bool = False) -> EventSource:
        """Where batches are read from: this process's copy in memory, or the files.

        Args:
            stream: Read from the files even when the study serves from memory: for a look
                at a few events in the driver (input statistics, baselines), which must not
                load the whole data set there.
        """
        from hpsearch.data import H5Source, memory_source

        if self.serve == "memory" and not stream:
            return memory_source(self.dataset, self.layout)
        return H5Source(self.dataset, self.layout)

    def reader(
        self,
        part: str,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        max_events: int | None = None,
        stream: bool = False,
    ) -> BatchReader:
        """A reader of one part of the split (``train``, ``val`` or ``test``).

        A streaming reader holds :attr:`buffer_bytes` of events (the study's memory budget
        decides it): large events need large buffers for a batch to mix many places of the
        file.
        """
        from hpsearch.data import BatchReader

        return BatchReader(
            self.source(stream=stream),
            self.parts.part(part),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            max_events=max_events,
            buffer_bytes=self.buffer_bytes,
        )

    def read(self, key: str, part: str) -> np.ndarray:
        """Dataset ``key`` (one row per event) for the events of ``part``, in file order.

        File order is the order an evaluation reader (``shuffle=False``) serves a part in, so
        row ``i`` belongs to the ``i``-th prediction of that part: how a task's objective gets
        what its metrics need besides the targets (the standard reconstruction's values, each
        map's background model). Read from the files, whatever the serving mode.
        """
        import h5py
        import numpy as np

        blocks = self.parts.part(part)
        blocks = blocks[np.argsort(blocks[:, 0], kind="stable")]
        pieces = []
        offset = 0
        for shard in self.dataset.files:
            lo, hi = offset, offset + shard.n_events
            offset = hi
            inside = blocks[(blocks[:, 1] > lo) & (blocks[:, 0] < hi)]
            if not len(inside):
                continue
            with h5py.File(shard.path, "r") as file:
                dataset = file[key]
                for start, stop in inside.tolist():
                    pieces.append(dataset[max(start, lo) - lo : min(stop, hi) - lo])
        return np.concatenate(pieces)

    def readers(
        self, batch_size: int, *, seed: int, eval_batch_size: int = 256
    ) -> tuple[BatchReader, BatchReader, BatchReader]:
        """Train (shuffled, capped at ``max_events``), validation and test readers."""
        return (
            self.reader("train", batch_size, shuffle=True, seed=seed, max_events=self.max_events),
            self.reader("val", eval_batch_size, shuffle=False, seed=seed),
            self.reader("test", eval_batch_size, shuffle=False, seed=seed),
        )


@dataclass
class TrialContext:
    """Everything one trial needs, and the channel its per-epoch results leave by.

    Attributes:
        number: The trial's number in the study.
        params: Its nested parameters, decoded from the search space.
        seed: Its seed (derived from the study's master seed).
        epochs: Its full training budget; reaching it makes the trial COMPLETE.
        data: Where its data is.
        cpus: CPU cores it was given (TensorFlow threads are set to match).
        gpus: GPU share it was given.
        input_stats: The study's input statistics: what the objective's ``input_stats(data)``
            computed once from the training split, the same for every trial (empty when the
            objective defines no such hook, or when ``train`` is called directly).
        report: Called once per epoch with a flat dict of metrics, including ``epoch``.
        save_model: Where to save the trained model (a ``.keras`` file), or None to keep
            nothing: a search keeps its models only with the study setting ``keep_models``,
            ``hpsearch train`` keeps the one it retrains. Save it before the last report (the
            scheduler stops the trial there); :func:`hpsearch.training.fit_and_report` does.
    """

    number: int
    params: dict[str, Any]
    seed: int
    epochs: int
    data: DataRef
    cpus: float = 1.0
    gpus: float = 0.0
    input_stats: Mapping[str, Any] = field(default_factory=dict)
    report: Callable[[dict[str, Any]], None] = field(default=lambda metrics: None, repr=False)
    save_model: Path | None = None


def is_module_name(ref: str | Path) -> bool:
    """Whether an objective reference names a module (``hpsearch.tasks.generic``), not a file."""
    text = str(ref)
    return not text.endswith(".py") and "/" not in text and "\\" not in text


def load_objective(path: str | Path, *, source: str | Path = "study") -> ModuleType:
    """Import an objective (a file by path, or a module by name; once per process) and check it.

    Raises:
        InputError: The file is missing, fails to import, or lacks ``train``/``METRICS``.
    """
    if is_module_name(path):
        module = importlib.import_module(str(path))
        return _checked(module, Path(module.__file__ or str(path)), str(path))
    file = Path(path).resolve()
    name = f"hpsearch_objective_{file.stem}_{abs(hash(str(file))):x}"
    if name in sys.modules:
        return sys.modules[name]
    if not file.is_file():
        raise InputError(
            source,
            "objective_file",
            f"objective file {file} not found",
            "create it, or set `objective_file` to the task's Python file",
        )
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InputError(
            source,
            "objective_file",
            f"cannot import {file}",
            "point `objective_file` at a .py file",
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # As `python FILE` does: the file's folder is on the path, so that it imports the modules
    # beside it (on a cluster node, hpsearch.runner._cluster ships that folder for them).
    if str(file.parent) not in sys.path:
        sys.path.append(str(file.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InputError(
            file,
            "",
            f"importing the objective failed: {type(exc).__name__}: {exc}",
            "fix the objective file so that `python FILE` runs",
        ) from exc
    return _checked(module, file, name)


def _checked(module: ModuleType, file: Path, name: str) -> ModuleType:
    """``module`` if it defines the objective protocol; else forget it and raise."""
    if not callable(getattr(module, "train", None)):
        sys.modules.pop(name, None)
        raise InputError(
            file,
            "train",
            "the objective file defines no `train(ctx)` function",
            "define `def train(ctx: TrialContext) -> None`",
        )
    hook = getattr(module, "input_stats", None)
    if hook is not None and not callable(hook):
        sys.modules.pop(name, None)
        raise InputError(
            file,
            "input_stats",
            f"`input_stats` is a {type(hook).__name__}, not a function",
            "define `def input_stats(data: DataRef) -> dict[str, Any]`, or remove the name",
        )
    metrics = getattr(module, "METRICS", None)
    if not isinstance(metrics, tuple | list) or not all(isinstance(m, str) for m in metrics):
        sys.modules.pop(name, None)
        raise InputError(
            file,
            "METRICS",
            "the objective file defines no METRICS tuple",
            'define `METRICS = ("val_accuracy", ...)`, the metrics it reports',
        )
    problem = _declaration_problem(module)
    if problem is not None:
        sys.modules.pop(name, None)
        key, text, fix = problem
        raise InputError(file, key, text, fix)
    return module


#: What an objective file's optional ``TARGET`` and ``DIRECTIONS`` may say.
_TARGETS = ("classification", "regression")
_DIRECTIONS = ("maximize", "minimize")


def _declaration_problem(module: ModuleType) -> tuple[str, str, str] | None:
    """What is wrong with the file's ``TARGET`` or ``DIRECTIONS``, as (key, problem, fix).

    Both say how hpsearch reads the task the file defines (the data's targets, which way a
    metric is better); a typo in either would otherwise surface inside the data checks as a
    crash, or, for a direction, not at all: the search would quietly rank trials backwards.
    """
    target = getattr(module, "TARGET", "classification")
    if target not in _TARGETS:
        return (
            "TARGET",
            f"TARGET is {target!r}",
            'write TARGET = "classification" (the default) or TARGET = "regression"',
        )
    directions = getattr(module, "DIRECTIONS", None)
    if directions is None:
        return None
    example = 'write e.g. DIRECTIONS = {"val_auc": "maximize"}: maximize or minimize per metric'
    if not isinstance(directions, Mapping):
        return "DIRECTIONS", f"DIRECTIONS is a {type(directions).__name__}, not a dict", example
    metrics = {*module.METRICS, *REQUIRED_METRICS}
    for metric, direction in directions.items():
        if metric not in metrics:
            return (
                f"DIRECTIONS[{metric!r}]",
                f"{metric!r} is not one of METRICS {list(module.METRICS)}",
                f"add it to METRICS, or correct the name; {example}",
            )
        if direction not in _DIRECTIONS:
            return f"DIRECTIONS[{metric!r}]", f"the direction is {direction!r}", example
    return None
