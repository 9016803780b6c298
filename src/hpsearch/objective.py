"""What an objective file (``objectives/TASK.py``) sees, and how hpsearch loads one.

An objective file trains and scores one trial. It defines::

    METRICS = ("val_accuracy", "train_seconds", ...)   # what it reports, for validation
    def train(ctx: TrialContext) -> None: ...           # calls ctx.report(...) once per epoch

The same file runs under Ray (``ctx.report`` is ``ray.tune.report``) and in a plain test
(``ctx.report`` appends to a list), so objectives are testable without a cluster.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
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
    """A picklable pointer to a task's data and its split, sent to every trial."""

    path: str
    x_key: str
    y_key: str
    fractions: tuple[float, float, float]
    block_size: int
    split_seed: int
    max_events: int | None = None

    def info(self) -> DatasetInfo:
        """Inspect the file (cheap: no finite scan, the driver did that)."""
        from hpsearch.data import Layout, inspect_dataset

        return inspect_dataset(self.path, Layout(self.x_key, self.y_key), scan_finite=False)

    def split(self) -> Split:
        """The study's train/validation/test split: the same for every trial and baseline."""
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
        report: Called once per epoch with a flat dict of metrics, including ``epoch``.
    """

    number: int
    params: dict[str, Any]
    seed: int
    epochs: int
    data: DataRef
    cpus: float = 1.0
    gpus: float = 0.0
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
