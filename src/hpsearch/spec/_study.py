"""Study files: ``studies/*.yaml`` name a task, its data, a space, objectives and a budget.

Everything a user can get wrong is checked here, before Ray starts or storage is touched, so a
typo costs one second and an error message, never a half-written study.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hpsearch.errors import InputError
from hpsearch.spec._errors import raise_input_error
from hpsearch.spec._space import SearchSpace, load_space, read_yaml_mapping

DEFAULT_STORAGE = "sqlite:///results/hpsearch.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    """Fractions of events for training, validation (search) and test (reporting only)."""

    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Self:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, but they sum to {total:g}")
        return self

    def fractions(self) -> tuple[float, float, float]:
        """As the data layer takes them."""
        return (self.train, self.val, self.test)


class SimulateSpec(_Strict):
    """How to make the data file when it is missing (``hpsearch simulate TASK``)."""

    events: int = Field(ge=100)
    seed: int | None = Field(None, description="default: derived from the study's seed")


class DataSpec(_Strict):
    """Where a task's events are, and how to cut them."""

    path: Path
    x_key: str = "waveforms"
    y_key: str = "labels"
    split: SplitSpec = SplitSpec()
    block_size: int = Field(32, ge=1, description="events per contiguous block of the split")
    max_events: int | None = Field(None, ge=10, description="cap on training events per trial")
    scan_finite: bool = True
    simulate: SimulateSpec | None = None


class ObjectiveSpec(_Strict):
    """One optimized metric: the search's Pareto front is over all of them."""

    metric: str
    direction: Literal["maximize", "minimize"]


SearcherType = Literal[
    "optuna-tpe",
    "optuna-nsga2",
    "optuna-gp",
    "optuna-cmaes",
    "hyperopt-tpe",
    "random",
    "grid",
]
#: The settings each searcher takes besides ``type``.
SEARCHER_SETTINGS: dict[str, frozenset[str]] = {
    "optuna-tpe": frozenset({"n_startup_trials"}),
    "optuna-nsga2": frozenset({"population_size"}),
    "optuna-gp": frozenset({"n_startup_trials"}),
    "optuna-cmaes": frozenset({"n_startup_trials", "weights"}),
    "hyperopt-tpe": frozenset({"n_startup_trials", "weights"}),
    "random": frozenset(),
    "grid": frozenset({"allow_partial"}),
}


class SearcherSpec(_Strict):
    """Which algorithm proposes the next trial, and its settings."""

    type: SearcherType = "optuna-tpe"
    n_startup_trials: int = Field(6, ge=1, description="random trials before the model is used")
    population_size: int = Field(20, ge=2, description="optuna-nsga2: trials per generation")
    weights: list[float] | None = Field(
        None,
        description="single-objective searchers: loss = sum of weight * objective (minimised; "
        "maximised objectives enter negated); default: the first objective alone",
    )
    allow_partial: bool = Field(
        False, description="grid: run the first budget.trials points of a larger grid"
    )

    @model_validator(mode="after")
    def _settings_of_this_type(self) -> Self:
        unknown = sorted(self.model_fields_set - {"type"} - SEARCHER_SETTINGS[self.type])
        if unknown:
            takes = ", ".join(sorted(SEARCHER_SETTINGS[self.type])) or "no settings"
            raise ValueError(f"searcher {self.type!r} does not take {unknown}; it takes {takes}")
        if self.weights is not None and (
            not self.weights or not any(self.weights) or any(w < 0 for w in self.weights)
        ):
            raise ValueError(f"weights must be >= 0 and not all 0, got {self.weights}")
        return self


class SchedulerSpec(_Strict):
    """Which algorithm stops poor trials early (single-metric, as Ray's schedulers are).

    ``asha`` (asynchronous successive halving), ``hyperband`` (ASHA over several brackets of
    different grace periods, Ray's asynchronous HyperBand), ``median`` (stop a trial whose
    best value so far is worse than the median of others at the same epoch) and ``fifo``
    (no early stopping).
    """

    type: Literal["asha", "hyperband", "median", "fifo"] = "asha"
    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    grace_period: int = Field(1, ge=1, description="epochs every trial gets")
    reduction_factor: float = Field(2.0, gt=1, description="asha, hyperband: keep 1 in this")
    brackets: int = Field(3, ge=1, description="hyperband: brackets of different grace periods")
    min_samples: int = Field(3, ge=1, description="median: trials needed before it stops any")

    @model_validator(mode="after")
    def _settings_of_this_type(self) -> Self:
        takes = {
            "asha": {"reduction_factor"},
            "hyperband": {"reduction_factor", "brackets"},
            "median": {"min_samples"},
            "fifo": set(),
        }[self.type] | {"type", "metric", "mode", "grace_period"}
        unknown = sorted(self.model_fields_set - takes)
        if unknown:
            raise ValueError(f"scheduler {self.type!r} does not take {unknown}")
        return self


class BudgetSpec(_Strict):
    """How much the study may spend. ``trials`` counts every finished trial in the study."""

    trials: int = Field(ge=1)
    seconds: float | None = Field(None, gt=0)
    epochs: int = Field(ge=1, description="full training budget of one trial")
    max_failures_in_a_row: int = Field(
        5, ge=1, description="stop the run when this many trials fail one after another"
    )


class ResourcesSpec(_Strict):
    """What one trial gets. Trials run side by side up to the machine's cores and GPUs."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float | Literal["auto"] = "auto"
    max_concurrent: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _gpu_range(self) -> Self:
        if isinstance(self.gpus_per_trial, float) and not 0 <= self.gpus_per_trial <= 8:
            raise ValueError(
                f"gpus_per_trial must be in [0, 8] or 'auto', got {self.gpus_per_trial}"
            )
        return self


class StudySpec(_Strict):
    """A whole study file, validated."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    task: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    objective_file: Path | None = None
    space: Path
    seed: int = Field(ge=0)
    data: DataSpec
    objectives: list[ObjectiveSpec] = Field(min_length=1, max_length=4)
    searcher: SearcherSpec = SearcherSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    budget: BudgetSpec
    resources: ResourcesSpec = ResourcesSpec()
    storage: str = DEFAULT_STORAGE
    results_dir: Path = Path("results")
    enqueue: Path | None = Field(
        None, description="a file of configurations to run first (`hpsearch run --enqueue`)"
    )
    deterministic: bool = Field(
        False,
        description="TensorFlow op determinism: a trial's numbers repeat bit for bit on the "
        "same machine and software, at some cost in speed",
    )

    @model_validator(mode="after")
    def _distinct_objectives(self) -> Self:
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"each metric may appear once in objectives, got {metrics}")
        return self

    def objective_path(self) -> Path:
        """The Python file that trains one trial of this task."""
        return self.objective_file or Path("objectives") / f"{self.task}.py"


class Study:
    """A study file and its search space, validated together.

    Attributes:
        source: The study file.
        spec: Its validated contents.
        space: The search space it names.
    """

    def __init__(self, source: Path, spec: StudySpec, space: SearchSpace) -> None:
        self.source = source
        self.spec = spec
        self.space = space


def load_enqueue(path: Path, space: SearchSpace) -> list[tuple[str, dict[str, Any]]]:
    """Read a file of hand-written configurations, each checked against the study's space.

    The file maps a label to a configuration written as the objective receives it (nested,
    a choice as ``{name: OPTION, ...}``, constants optional)::

        resnet10:                      # the seed's ResNet-10
          model: {name: resnet, blocks: 3, filters: 64, kernel_size: 8}
          batch_size: 64

    Returns:
        ``(label, flat values)`` per configuration, in file order.

    Raises:
        InputError: The file is missing or not YAML, or a configuration is not a point of the
            space (the message names the label and the key).
    """
    raw = read_yaml_mapping(path, what="enqueue")
    configs = []
    for label, config in raw.items():
        if not isinstance(config, dict):
            raise InputError(
                path,
                str(label),
                f"a configuration is a mapping of parameters, got {config!r}",
                "write `LABEL: {param: value, ...}`",
            )
        try:
            configs.append((str(label), space.encode(config)))
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise InputError(
                path,
                f"{label}.{key}",
                problem or str(exc),
                f"write a value of the space in {space.source} (`hpsearch validate STUDY` "
                "prints it)",
            ) from exc
    return configs


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """Parse ``--set key.sub=value`` items; values are YAML (``4``, ``true``, ``[1, 2]``)."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(
                "--set",
                item,
                "an override must look like `key.sub=value`",
                "write e.g. `--set budget.trials=4`",
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(
                "--set",
                key,
                f"value {text!r} is not valid YAML",
                "quote strings that contain YAML syntax",
            ) from exc
        parsed.append((key.strip().split("."), value))
    return parsed


def _apply(raw: dict[str, Any], path: list[str], value: Any, item: str) -> None:
    target: Any = raw
    for depth, part in enumerate(path[:-1]):
        if isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
            continue
        if not isinstance(target, dict):
            raise InputError(
                "--set",
                item,
                f"`{'.'.join(path[:depth])}` is not a mapping",
                "override a key inside a mapping",
            )
        target = target.setdefault(part, {})
    last = path[-1]
    if isinstance(target, list) and last.isdigit() and int(last) < len(target):
        target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise InputError(
            "--set",
            item,
            f"`{'.'.join(path[:-1])}` is not a mapping",
            "override a key inside a mapping",
        )


def load_study(
    path: str | Path, overrides: list[str] | None = None, *, storage: str | None = None
) -> Study:
    """Read a study file, apply ``--set`` overrides and ``--storage``, and validate it all.

    Raises:
        InputError: Anything wrong in the study file, its space file or an override.
    """
    source = Path(path)
    raw = copy.deepcopy(read_yaml_mapping(source, what="study"))
    origins: dict[str, str] = {}
    for parts, value in parse_overrides(overrides or []):
        _apply(raw, parts, value, ".".join(parts))
        origins[".".join(parts)] = f"--set {'.'.join(parts)}"
    if storage is not None:
        raw["storage"] = storage
        origins["storage"] = "--storage"
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, source, model=StudySpec, sources=origins) from exc
    space = load_space(spec.space)
    return Study(source, spec, space)
