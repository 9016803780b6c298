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
from typing import TYPE_CHECKING, Any

from hpsearch.errors import HpsearchError, InputError

if TYPE_CHECKING:
    from hpsearch.data import BatchReader, DatasetInfo, Split

#: Every objective's reports carry these; the Recorder and the report rely on them.
REQUIRED_METRICS = ("train_seconds",)


class TrialFailed(HpsearchError):
    """Raised by an objective for a trial that cannot go on (NaN loss, say)."""


@dataclass(frozen=True)
class DataRef:
    """A picklable pointer to a task's data and its split, sent to every trial.

    Attributes:
        path: Absolute path of the HDF5 file.
        x_key: Dataset of the inputs.
        y_key: Dataset of the labels.
        fractions: Train, validation and test fractions of the split.
        block_size: Events per block of the split.
        split_seed: Seed of the split (derived from the study's master seed).
        max_events: Cap on the training events a trial reads, or None.
        dataset_info: What the driver's :func:`~hpsearch.data.inspect_dataset` found, so that
            a trial's :meth:`info`, :meth:`split` and :meth:`readers` neither open the file nor
            read every label of it again (each used to, twice per trial). None (e.g. a DataRef
            made by hand) inspects the file when asked. It is a few numbers and the file's root
            attributes; the split itself is not carried: it is computed from ``n_events`` in
            memory, and its block list grows with the file while this pointer should stay small.
    """

    path: str
    x_key: str
    y_key: str
    fractions: tuple[float, float, float]
    block_size: int
    split_seed: int
    max_events: int | None = None
    dataset_info: DatasetInfo | None = field(default=None, compare=False, repr=False)

    def info(self) -> DatasetInfo:
        """What the file holds: the driver's inspection if carried, else a fresh one.

        A fresh inspection is cheap-ish (no finite scan: the driver did that) but still reads
        every label; :func:`hpsearch.prepare.prepare` makes DataRefs that never need it.
        """
        if self.dataset_info is not None:
            return self.dataset_info
        from hpsearch.data import Layout, inspect_dataset

        return inspect_dataset(self.path, Layout(self.x_key, self.y_key), scan_finite=False)

    def split(self) -> Split:
        """The study's train/validation/test split: the same for every trial and baseline.

        Computed from the number of events alone, without reading the file when
        ``dataset_info`` is carried.
        """
        from hpsearch.data import make_split

        return make_split(
            self.info().n_events,
            seed=self.split_seed,
            fractions=self.fractions,
            block_size=self.block_size,
        )

    def readers(
        self, batch_size: int, *, seed: int, eval_batch_size: int = 256
    ) -> tuple[BatchReader, BatchReader, BatchReader]:
        """Train (shuffled), validation and test readers over the study's split."""
        from hpsearch.data import BatchReader, Layout

        split = self.split()
        layout = Layout(self.x_key, self.y_key)
        train = BatchReader(
            self.path,
            layout,
            split.train,
            batch_size,
            shuffle=True,
            seed=seed,
            max_events=self.max_events,
        )
        val = BatchReader(self.path, layout, split.val, eval_batch_size, shuffle=False, seed=seed)
        test = BatchReader(self.path, layout, split.test, eval_batch_size, shuffle=False, seed=seed)
        return train, val, test


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


def load_objective(path: str | Path, *, source: str | Path = "study") -> ModuleType:
    """Import an objective file by path (once per process) and check it defines the protocol.

    Raises:
        InputError: The file is missing, fails to import, or lacks ``train``/``METRICS``.
    """
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
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise InputError(
            file,
            "",
            f"importing the objective failed: {type(exc).__name__}: {exc}",
            "fix the objective file so that `python FILE` runs",
        ) from exc
    if not callable(getattr(module, "train", None)):
        del sys.modules[name]
        raise InputError(
            file,
            "train",
            "the objective file defines no `train(ctx)` function",
            "define `def train(ctx: TrialContext) -> None`",
        )
    hook = getattr(module, "input_stats", None)
    if hook is not None and not callable(hook):
        del sys.modules[name]
        raise InputError(
            file,
            "input_stats",
            f"`input_stats` is a {type(hook).__name__}, not a function",
            "define `def input_stats(data: DataRef) -> dict[str, Any]`, or remove the name",
        )
    metrics = getattr(module, "METRICS", None)
    if not isinstance(metrics, tuple | list) or not all(isinstance(m, str) for m in metrics):
        del sys.modules[name]
        raise InputError(
            file,
            "METRICS",
            "the objective file defines no METRICS tuple",
            'define `METRICS = ("val_accuracy", ...)`, the metrics it reports',
        )
    return module
