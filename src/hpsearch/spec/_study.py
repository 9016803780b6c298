"""Study files: ``studies/*.yaml`` name a task, its data, a space, objectives and a budget.

Everything a user can get wrong is checked here, before Ray starts or storage is touched, so a
typo costs one second and an error message, never a half-written study.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from hpsearch.errors import InputError
from hpsearch.spec._errors import Invalid, raise_input_error
from hpsearch.spec._space import SearchSpace, load_space, read_yaml_mapping

if TYPE_CHECKING:
    from hpsearch.tasks import Task

DEFAULT_STORAGE = "sqlite:///results/hpsearch.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    """Seeded fractions of the events for training, validation (search) and test (report only)."""

    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Self:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise Invalid(
                f"train + val + test must be 1, but they sum to {total:g}",
                "make the three fractions add up to 1, e.g. {train: 0.7, val: 0.15, test: 0.15}",
            )
        return self

    def fractions(self) -> tuple[float, float, float]:
        """As the data layer takes them."""
        return (self.train, self.val, self.test)


_VAL_FRACTION = Field(
    None,
    gt=0,
    lt=1,
    description="when the split gives no validation part: this fraction of the training events "
    "(default 0.15)",
)
Part = Literal["train", "val", "test"]


class LabelSplit(_Strict):
    """The file says each event's part: a dataset of 0/1/2 or "train"/"val"/"test"."""

    labels: str = Field(description="dataset of one part label per event")
    val_fraction: float | None = _VAL_FRACTION


class IndexSplit(_Strict):
    """The file lists each part's events: datasets of event indices."""

    indices: dict[Part, str] = Field(description="part -> dataset of event indices")
    val_fraction: float | None = _VAL_FRACTION

    @model_validator(mode="after")
    def _train_and_test(self) -> Self:
        missing = sorted({"train", "test"} - set(self.indices))
        if missing:
            raise Invalid(
                f"indices needs datasets for train and test, missing {missing}",
                "name the dataset of each part's event indices, e.g. "
                "{train: idx/train, test: idx/test}",
            )
        return self


class FileSplit(_Strict):
    """Each part in its own file(s): ``{train: a.h5, val: b.h5, test: [c.h5, d.h5]}``."""

    files: dict[Part, Path | list[Path]] = Field(description="part -> file or list of files")
    val_fraction: float | None = _VAL_FRACTION

    @model_validator(mode="after")
    def _train_and_test(self) -> Self:
        missing = sorted({"train", "test"} - set(self.files))
        if missing:
            raise Invalid(
                f"files needs train and test files, missing {missing}",
                "name each part's file(s), e.g. {train: data/train.h5, test: data/test.h5}",
            )
        return self

    def paths(self) -> tuple[list[Path], list[str]]:
        """Every file in part order (train, val, test), and the part of each."""
        paths: list[Path] = []
        parts: list[str] = []
        for part in ("train", "val", "test"):
            given = self.files.get(part)
            for path in [given] if isinstance(given, Path) else given or []:
                paths.append(path)
                parts.append(part)
        return paths, parts


def _split_kind(value: Any) -> str:
    """Which split a study's ``data.split`` mapping describes, by its keys."""
    if isinstance(value, dict):
        for kind in ("labels", "indices", "files"):
            if kind in value:
                return kind
    elif isinstance(value, LabelSplit):
        return "labels"
    elif isinstance(value, IndexSplit):
        return "indices"
    elif isinstance(value, FileSplit):
        return "files"
    return "fractions"


AnySplit = Annotated[
    Annotated[SplitSpec, Tag("fractions")]
    | Annotated[LabelSplit, Tag("labels")]
    | Annotated[IndexSplit, Tag("indices")]
    | Annotated[FileSplit, Tag("files")],
    Discriminator(_split_kind),
]


class GroupSpec(_Strict):
    """A split by group: train on some groups, test on others never seen in training.

    The Galactic-Center task trains on three background models and tests on two others; any
    per-event group label (a run, a season, a detector) works the same way.
    """

    key: str = Field(description="dataset of one group value per event")
    train: list[str | int] = Field(min_length=1)
    test: list[str | int] = Field(min_length=1)
    val: list[str | int] | None = Field(
        None, description="default: val_fraction of the training groups' events"
    )
    val_fraction: float | None = _VAL_FRACTION

    @model_validator(mode="after")
    def _one_source_of_validation(self) -> Self:
        if self.val is not None and self.val_fraction is not None:
            raise Invalid(
                "give either val (groups) or val_fraction, not both",
                "remove either `val` or `val_fraction`",
                key="val_fraction",
            )
        return self


class SimulateSpec(_Strict):
    """How to make the data file when it is missing (``hpsearch simulate TASK``)."""

    events: int = Field(ge=100)
    seed: int | None = Field(None, description="default: derived from the study's seed")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="the simulator's settings (its Config class's fields), e.g. {n_pixels: 64}",
    )


class DataSpec(_Strict):
    """Where a task's events are, what they are, and how to cut and serve them."""

    path: Path | list[Path] | None = Field(
        None, description="HDF5 file, list of shards, or a glob such as data/shards/*.h5"
    )
    x_key: str = Field("waveforms", description="dataset of the inputs (default: the task's)")
    y_key: str = Field("labels", description="dataset of the targets (default: the task's)")
    class_names: list[str] | None = Field(
        None, min_length=2, description="classification: one name per label value 0..k-1"
    )
    target_names: list[str] | None = Field(
        None, min_length=1, description="regression: one name per target column"
    )
    split: AnySplit = SplitSpec()
    groups: GroupSpec | None = None
    block_size: int = Field(32, ge=1, description="events per contiguous block of the split")
    max_events: int | None = Field(None, ge=10, description="cap on training events per trial")
    scan_finite: bool = True
    memory_budget_gb: float | Literal["auto"] = Field(
        "auto",
        description="serve the data from memory (loaded once per worker process) when it fits "
        "this many GB, else stream it from disk; auto: a tenth of this machine's memory; "
        "0: always stream",
    )
    simulate: SimulateSpec | None = None

    @model_validator(mode="after")
    def _where_the_events_are(self) -> Self:
        files = isinstance(self.split, FileSplit)
        if files and self.path is not None:
            raise Invalid(
                "give either data.path or data.split.files, not both",
                "remove data.path: the split's files name the data",
                key="path",
            )
        if not files and self.path is None:
            raise Invalid(
                "data.path is required (or data.split.files)",
                "add `data.path: FILE.h5` (a file, a list of files, or a glob)",
                key="path",
            )
        if self.groups is not None and "split" in self.model_fields_set:
            raise Invalid(
                "give either data.split or data.groups, not both",
                "remove either data.split or data.groups",
                key="groups",
            )
        if isinstance(self.memory_budget_gb, float | int) and self.memory_budget_gb < 0:
            raise Invalid(
                f"memory_budget_gb must be >= 0, got {self.memory_budget_gb}",
                "give a number of GB >= 0 (0: always stream from disk), or auto",
                key="memory_budget_gb",
            )
        if self.simulate is not None and not isinstance(self.path, Path):
            raise Invalid(
                "data.simulate needs data.path to be one file",
                "give data.path as one file, or remove data.simulate",
                key="simulate",
            )
        return self

    def main_path(self) -> Path:
        """The one file the study names (for simulation and messages); the first of several."""
        if isinstance(self.path, Path):
            return self.path
        if isinstance(self.path, list) and self.path:
            return self.path[0]
        if isinstance(self.split, FileSplit):
            return self.split.paths()[0][0]
        raise ValueError("no data file")


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
            raise Invalid(
                f"searcher {self.type!r} does not take {unknown}; it takes {takes}",
                f"remove {', '.join(unknown)}, or choose a searcher that takes it",
            )
        if self.weights is not None and (
            not self.weights or not any(self.weights) or any(w < 0 for w in self.weights)
        ):
            raise Invalid(
                f"weights must be >= 0 and not all 0, got {self.weights}",
                "give one weight >= 0 per objective, at least one of them above 0",
            )
        return self


class SchedulerSpec(_Strict):
    """Which algorithm stops poor trials early.

    ``asha`` (asynchronous successive halving on ``metric``; the default for one objective),
    ``moasha`` (ASHA ranking each rung by Pareto rank over all the study's objectives, see
    :mod:`hpsearch.runner._moasha`), ``hyperband`` (ASHA over
    several brackets of different grace periods, Ray's asynchronous HyperBand), ``median``
    (Ray's median stopping rule: stop a trial whose best value so far is worse than the median
    of others at the same epoch), ``optuna-median`` (Optuna's own ``MedianPruner``: a trial
    whose best value so far is worse than the median of the completed trials' values at the
    same epoch, once ``min_samples`` trials (Optuna's default 5) have completed) and ``fifo``
    (no early stopping).
    """

    type: Literal["asha", "hyperband", "median", "optuna-median", "moasha", "fifo"] = "asha"
    metric: str = Field("val_accuracy", description="default: the study's first objective")
    mode: Literal["max", "min"] = Field("max", description="default: the metric's direction")
    grace_period: int = Field(1, ge=1, description="epochs every trial gets")
    reduction_factor: float = Field(
        2.0, gt=1, description="asha, moasha, hyperband: keep 1 in this"
    )
    brackets: int = Field(3, ge=1, description="hyperband: brackets of different grace periods")
    min_samples: int = Field(
        3,
        ge=1,
        description="median: trials needed before it stops any; optuna-median: completed "
        "trials needed (default there: Optuna's 5)",
    )

    @model_validator(mode="after")
    def _settings_of_this_type(self) -> Self:
        settings = {
            "asha": {"reduction_factor"},
            "moasha": {"reduction_factor"},
            "hyperband": {"reduction_factor", "brackets"},
            "median": {"min_samples"},
            "optuna-median": {"min_samples"},
            "fifo": set(),
        }[self.type] | {"type", "metric", "mode", "grace_period"}
        unknown = sorted(self.model_fields_set - settings)
        if unknown:
            takes = ", ".join(sorted(settings - {"type"}))
            raise Invalid(
                f"scheduler {self.type!r} does not take {unknown}; it takes {takes}",
                f"remove {', '.join(unknown)}, or choose a scheduler that takes it",
            )
        return self


class BudgetSpec(_Strict):
    """How much the study may spend. ``trials`` counts every finished trial in the study."""

    trials: int = Field(ge=1)
    seconds: float | None = Field(None, gt=0)
    epochs: int = Field(ge=1, description="full training budget of one trial")
    max_failures_in_a_row: int = Field(
        5, ge=1, description="stop the run when this many trials fail one after another"
    )


class ResumeSpec(_Strict):
    """What a new run of a stored study does with the trials an earlier run left unjudged.

    A trial the run cut (Ctrl-C, the time budget, a killed driver, a lost Ray worker) says
    nothing about its configuration, so by default the next run trains that configuration
    again; ``fail`` leaves such trials FAIL and lets the searcher propose new ones instead.
    """

    cut_trials: Literal["rerun", "fail"] = Field(
        "rerun", description="rerun: train a cut trial's parameters again on the next run"
    )
    heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        description="a driver marks its running trials alive this often; a RUNNING trial "
        "whose mark is 3 beats old belongs to a dead driver and is ended as cut",
    )


class ResourcesSpec(_Strict):
    """What one trial gets. Trials run side by side up to the machine's cores and GPUs."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float | Literal["auto"] = "auto"
    max_concurrent: int | None = Field(None, ge=1)
    worker_retries: int = Field(
        2,
        ge=0,
        description="a trial whose Ray worker process died (the OOM killer, a segfault, a "
        "kill) is queued again at once with the same parameters and seed, up to this many "
        "times; the lost attempts are FAIL (worker_lost) and not counted against "
        "budget.trials",
    )

    @model_validator(mode="after")
    def _gpu_range(self) -> Self:
        if isinstance(self.gpus_per_trial, float) and not 0 <= self.gpus_per_trial <= 8:
            raise Invalid(
                f"gpus_per_trial must be in [0, 8] or 'auto', got {self.gpus_per_trial}",
                "give the GPUs of one trial from 0 to 8 (a share such as 0.5 is fine), or auto",
                key="gpus_per_trial",
            )
        return self


class StudySpec(_Strict):
    """A whole study file, validated."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    task: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    objective_file: Path | None = None
    space: Path = Field(description="default: the task's own space")
    seed: int = Field(ge=0)
    data: DataSpec
    objectives: list[ObjectiveSpec] = Field(
        min_length=1, max_length=4, description="default: the task's primary metric"
    )
    searcher: SearcherSpec = SearcherSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    budget: BudgetSpec
    resources: ResourcesSpec = ResourcesSpec()
    resume: ResumeSpec = ResumeSpec()
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
    keep_models: Literal["none", "pareto", "all"] = Field(
        "none",
        description="save trained models under results_dir/models/<study>/: `pareto` keeps "
        "those of the current Pareto front (a model is deleted when its trial drops off it), "
        "`all` every COMPLETE trial's; each is the model after its last epoch, the one the "
        "trial's stored values describe",
    )

    @field_validator("storage")
    @classmethod
    def _a_database_url(cls, url: str) -> str:
        """Refuse a URL SQLAlchemy cannot parse or has no database kind for, before any run.

        Only the text is checked (no connection, no driver import), so ``validate`` says it
        at once; whether the server answers is for ``run`` to find out.
        """
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        from hpsearch.results.storage import mask_url

        fix = (
            "give an SQLAlchemy URL such as sqlite:///results/hpsearch.db or "
            "postgresql+psycopg2://USER@HOST/DB"
        )
        try:
            make_url(url).get_dialect()
        except NoSuchModuleError as exc:  # an ArgumentError too: the more precise first
            kind = url.partition(":")[0]
            raise Invalid(
                f"no database of kind {kind!r} is known ({mask_url(url)!r})", fix
            ) from exc
        except ArgumentError as exc:
            raise Invalid(f"{mask_url(url)!r} is not a database URL", fix) from exc
        return url

    @model_validator(mode="after")
    def _distinct_objectives(self) -> Self:
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise Invalid(
                f"each metric may appear once in objectives, got {metrics}",
                "list each metric once",
                key="objectives",
            )
        return self

    def objective_path(self) -> Path:
        """The Python file that trains one trial of a task without a Task of its own."""
        return self.objective_file or Path("objectives") / f"{self.task}.py"


class Study:
    """A study file and its search space, validated together.

    Attributes:
        source: The study file.
        spec: Its validated contents.
        space: The search space it names.
        task: Its task; None for a task that the study's own objective file defines, until
            :func:`hpsearch.prepare.prepare` builds it from that file.
    """

    def __init__(
        self, source: Path, spec: StudySpec, space: SearchSpace, task: Task | None = None
    ) -> None:
        self.source = source
        self.spec = spec
        self.space = space
        self.task = task


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
    task = _task_of(raw, source)
    if task is not None:
        _fill_task_defaults(raw, task)
    _fill_scheduler_defaults(raw, task)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, source, model=StudySpec, sources=origins) from exc
    if task is not None:
        check_metrics(spec, task, source)
    _check_grace_period(spec, source, origins)
    _check_scheduler_mode(spec, source, origins)
    space = load_space(spec.space)
    return Study(source, spec, space, task)


def _check_grace_period(spec: StudySpec, source: Path, origins: Mapping[str, str]) -> None:
    """Refuse a grace period longer than a trial: it used to be clamped without a word.

    A scheduler that must let every trial run ``grace_period`` epochs cannot do so when
    trials stop at ``budget.epochs``; the two were written with different intentions, and
    only the user knows which one is wrong.

    Raises:
        InputError: ``scheduler.grace_period`` exceeds ``budget.epochs``.
    """
    grace, epochs = spec.scheduler.grace_period, spec.budget.epochs
    if grace <= epochs:
        return
    origin = origins.get("scheduler.grace_period") or origins.get("budget.epochs") or source
    raise InputError(
        origin,
        "scheduler.grace_period",
        f"grace period of {grace} epochs is longer than a trial (budget.epochs = {epochs})",
        f"give `--set scheduler.grace_period={epochs}` (or less), or more epochs",
    )


def _check_scheduler_mode(spec: StudySpec, source: Path, origins: Mapping[str, str]) -> None:
    """Refuse a scheduler that ranks an objective's metric against the study's direction.

    :func:`check_metrics` compares the mode with the metric's known direction; a metric whose
    name says nothing (an objective file's ``val_auc_gain``) has none, and the study's own
    objectives are then the only word on which way is better. An ASHA whose mode disagrees
    with them stops the trials the search wants and keeps those it ranks last.

    Raises:
        InputError: ``scheduler.mode`` is against the direction of the objective that
            ``scheduler.metric`` names.
    """
    scheduler = spec.scheduler
    for index, objective in enumerate(spec.objectives):
        wanted = _MODES[objective.direction]
        if objective.metric != scheduler.metric or scheduler.mode == wanted:
            continue
        origin = origins.get("scheduler.mode") or origins.get("scheduler") or source
        kept = "lowest" if scheduler.mode == "min" else "highest"
        raise InputError(
            origin,
            "scheduler.mode",
            f"the study would {objective.direction} {objective.metric} (objectives.{index}), "
            f"but the scheduler's mode {scheduler.mode} keeps the trials with its {kept} "
            "values and stops the others",
            f"write mode: {wanted}",
        )


def _task_of(raw: dict[str, Any], source: Path) -> Task | None:
    """The study's task when hpsearch knows it; None for one its objective file defines."""
    from hpsearch.tasks import get_task

    name = raw.get("task")
    if not isinstance(name, str):
        return None  # the schema check reports it
    objective_file = raw.get("objective_file")
    return get_task(
        name, source=source, objective_file=Path(objective_file) if objective_file else None
    )


def _fill_task_defaults(raw: dict[str, Any], task: Task) -> None:
    """Fill what the study leaves out from its task: space, objectives, dataset names.

    Done on the raw mapping, before validation, so that the validated spec has no optional
    fields that every later reader would have to check again.
    """
    if "space" not in raw and task.space is not None:
        raw["space"] = str(task.space)
    if "objectives" not in raw:
        raw["objectives"] = [
            {"metric": task.primary, "direction": task.direction(task.primary)},
            {"metric": "train_seconds", "direction": "minimize"},
        ]
    data = raw.get("data")
    if isinstance(data, dict):
        data.setdefault("x_key", task.x_key)
        data.setdefault("y_key", task.y_key)


def _fill_scheduler_defaults(raw: dict[str, Any], task: Task | None) -> None:
    """The scheduler watches the first objective unless told otherwise, in its direction.

    ASHA is the default for several objectives too (``moasha`` is there to choose): on the
    300-row xgamma families table (``make bench``, docs/search_efficiency_candidates.md),
    under the same multi-objective TPE, ASHA on the first objective reached the table's top 2%
    with less compute and a larger hypervolume of the accuracy-time front than MOASHA, on 40
    fresh seeds; MOASHA keeps fast, less accurate trials at each rung, and pays for them in
    the accurate ones it stops.
    """
    scheduler = raw.setdefault("scheduler", {})
    objectives = raw.get("objectives")
    if not isinstance(scheduler, dict) or not isinstance(objectives, list) or not objectives:
        return
    first = objectives[0]
    if not isinstance(first, dict):
        return
    if "metric" not in scheduler and isinstance(first.get("metric"), str):
        scheduler["metric"] = first["metric"]
    if "mode" in scheduler or not isinstance(scheduler.get("metric"), str):
        return
    metric = scheduler["metric"]
    directions = {o.get("metric"): o.get("direction") for o in objectives if isinstance(o, dict)}
    direction = directions.get(metric) or (task.direction(metric) if task else None)
    if direction in _MODES:
        scheduler["mode"] = _MODES[direction]


_MODES = {"maximize": "max", "minimize": "min"}


def check_metrics(spec: StudySpec, task: Task, source: Path) -> None:
    """Check that the task reports every metric the study optimises, in the right direction.

    A maximised loss, or an ASHA that keeps the trials with the highest loss, would run a
    whole search for the worst models; it is refused before anything runs.

    Raises:
        InputError: A metric the task does not report, or a direction against the metric's.
    """
    reported = ", ".join(sorted(task.metrics))
    checks: list[tuple[str, str, str]] = [
        (f"objectives.{i}", o.metric, o.direction) for i, o in enumerate(spec.objectives)
    ]
    mode = {"max": "maximize", "min": "minimize"}[spec.scheduler.mode]
    checks.append(("scheduler", spec.scheduler.metric, mode))
    for key, metric, direction in checks:
        if metric not in task.metrics:
            raise InputError(
                source,
                f"{key}.metric",
                f"task {task.name!r} does not report {metric!r}",
                f"use one of {reported}",
            )
        better = task.direction(metric)
        if better is not None and better != direction:
            field = "direction" if key.startswith("objectives") else "mode"
            wanted = better if field == "direction" else _MODES[better]
            raise InputError(
                source,
                f"{key}.{field}",
                f"{metric} is better when {'larger' if better == 'maximize' else 'smaller'}, "
                f"but the study would {direction} it and search for the worst models",
                f"write {field}: {wanted}",
            )
