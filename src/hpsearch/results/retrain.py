"""Retrain one configuration outside the search and keep its model: ``hpsearch train``.

The config (written by ``hpsearch export``, or by hand) names the task, the data and its
split, the parameters, the seed, the epochs and the input normalisation. The data goes through
the same steps a study's does (:mod:`hpsearch.prepare`: files, inspection, the split seeded by
the study's master seed, memory or streaming), and the task's own objective trains the model,
``train(ctx)`` exactly as a trial runs it, so the numbers are the trial's: on the same machine
type, thread count and software they repeat (see the README's "What repeats").

What is kept in the output directory:

* ``model.keras``: the trained Keras model, readable by plain ``keras.models.load_model``
  (the models use only Keras's own layers). It takes inputs as the objective feeds them,
  normalised with ``input_stats`` (for xgamma: baseline-subtracted, divided by the scale).
* ``history.json``: every epoch's report, as the trial reported it.
* ``metrics.json``: the last report (test metrics included) with the config's provenance and,
  when the config has them, the searched trial's test metrics beside the new ones.
* ``config.yaml``: the config as it was trained (epochs after ``--epochs``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from hpsearch.errors import InputError
from hpsearch.objective import TrialFailed
from hpsearch.results.export import CONFIG_FORMAT

__all__ = ["TrainConfig", "default_out", "load_config", "retrain"]

#: The tolerance the tests hold a retrained test accuracy to (measured: exact on one CPU).
REPRODUCTION_TOLERANCE = 1e-3


class TrainConfig(BaseModel):
    """A retraining config, validated (the format ``hpsearch export`` writes).

    Only ``task``, ``data``, ``params``, ``epochs`` and ``seed`` are required; a hand-written
    config may leave out the rest.
    """

    model_config = ConfigDict(extra="forbid")

    format: str = CONFIG_FORMAT
    study: str = Field("retrain", pattern=r"^[A-Za-z0-9_.-]+$")
    task: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    objective_file: Path | None = None
    study_seed: int = Field(0, ge=0, description="the study's master seed: the split's seed")
    data: dict[str, Any]
    trial: int | None = Field(None, ge=0)
    params: dict[str, Any]
    epochs: int = Field(ge=1)
    seed: int = Field(ge=0)
    cpus: float = Field(1.0, gt=0)
    deterministic: bool = False
    input_stats: dict[str, Any] = Field(default_factory=dict)
    model: str | None = Field(
        None,
        description="the trial's own trained model (keep_models), beside this file: "
        "`keras.models.load_model` reads it; `hpsearch train` trains a new one regardless",
    )
    provenance: dict[str, Any] = Field(default_factory=dict)


def load_config(path: Path) -> TrainConfig:
    """Read and validate a retraining config.

    Raises:
        InputError: A missing file, not YAML, another format, or a field of the wrong kind.
    """
    from hpsearch.spec._errors import raise_input_error
    from hpsearch.spec._space import read_yaml_mapping

    raw = read_yaml_mapping(path, what="retraining config")
    if raw.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        raise InputError(
            path,
            "format",
            f"format {raw['format']!r} is not {CONFIG_FORMAT!r}",
            "export the config again with this hpsearch (`hpsearch export`)",
        )
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, path, model=TrainConfig) from exc


def default_out(config: TrainConfig, path: Path, results_dir: Path = Path("results")) -> Path:
    """``results/<study>/trial-<n>/`` (a hand-written config without a trial: its file name)."""
    leaf = f"trial-{config.trial}" if config.trial is not None else path.stem
    return results_dir / config.study / leaf


def _study(config: TrainConfig, path: Path) -> Any:
    """The config as a :class:`~hpsearch.spec.Study`, so the data steps of a study apply.

    The search-specific parts (space, objectives, budget) are placeholders that no data step
    reads; ``seed`` is the study's master seed, from which the split derives.

    Raises:
        InputError: The task is unknown, or the data section is invalid.
    """
    from hpsearch.spec import SearchSpace, Study, StudySpec
    from hpsearch.spec._errors import raise_input_error
    from hpsearch.tasks import get_task

    task = get_task(config.task, source=path, objective_file=config.objective_file)
    raw = {
        "name": config.study,
        "task": config.task,
        "objective_file": str(config.objective_file) if config.objective_file else None,
        "space": str(path),
        "seed": config.study_seed,
        "data": config.data,
        "objectives": [{"metric": "train_seconds", "direction": "minimize"}],
        "scheduler": {"type": "fifo", "metric": "train_seconds", "mode": "min"},
        "budget": {"trials": 1, "epochs": config.epochs},
        "deterministic": config.deterministic,
    }
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, path, model=StudySpec) from exc
    return Study(path, spec, SearchSpace(source=path, family=None, tree={}), task)


def _data(config: TrainConfig, path: Path, console: Console) -> tuple[Any, Any, str, Any]:
    """Objective module, DataRef, objective reference and task, as :func:`prepare` makes them."""
    from hpsearch.prepare import load_task, open_data

    study = _study(config, path)
    objective, ref, task = load_task(study, source=path)
    _, data = open_data(study, task, console, scan_finite=False)
    return objective, data, ref, task


class _Progress:
    """``ctx.report`` for a retraining: keeps every epoch and moves a rich progress bar."""

    def __init__(self, epochs: int, advance: Callable[[dict[str, Any]], None]) -> None:
        self.epochs = epochs
        self.history: list[dict[str, Any]] = []
        self._advance = advance

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.history.append(dict(metrics))
        self._advance(metrics)


def _line(metrics: dict[str, Any]) -> str:
    shown = [k for k in ("loss", "val_loss", "val_accuracy") if k in metrics]
    return ", ".join(f"{k} {float(metrics[k]):.4f}" for k in shown)


def retrain(
    config: TrainConfig,
    path: Path,
    out: Path,
    console: Console,
    *,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Train ``config``'s model, save it with its history and metrics into ``out``.

    TensorFlow's thread pools are sized to the config's ``cpus`` (as a trial's were) before
    TensorFlow starts; in a process that already imported it the setting cannot change, and
    the numbers may differ from the trial's in the last digits.

    Args:
        config: The validated config.
        path: Its file, for messages.
        out: The output directory (made if missing).
        console: Where progress goes.
        epochs: Train this many epochs instead of the config's.

    Returns:
        What ``metrics.json`` holds.

    Raises:
        InputError: The data or objective cannot be found or read.
        TrialFailed: Training failed (a NaN loss), or the objective saved no model.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hpsearch.objective import TrialContext
    from hpsearch.runner._worker import tensorflow_env

    for key, value in tensorflow_env(config.cpus, 0.0, deterministic=config.deterministic).items():
        os.environ.setdefault(key, value)
    if epochs is not None:
        config = config.model_copy(update={"epochs": epochs})
    objective, data, _ref, _task = _data(config, path, console)
    expected = (config.provenance or {}).get("split_fingerprint")
    if expected and data.split().fingerprint() != expected:
        console.print(
            f"[bold yellow]warning:[/] the data split (fingerprint "
            f"{data.split().fingerprint()}) is not the searched trial's ({expected}): the data "
            "file or the split changed, so the metrics will not repeat the trial's"
        )
    stats = config.input_stats
    if not stats:
        from hpsearch.prepare import compute_input_stats

        stats = compute_input_stats(objective, data, path)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.keras"
    if model_path.exists():
        model_path.unlink()
    label = f"{config.study} trial {config.trial}" if config.trial is not None else config.study
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(f"Training {label}", total=config.epochs, line="")
        channel = _Progress(config.epochs, lambda m: progress.update(bar, advance=1, line=_line(m)))
        ctx = TrialContext(
            number=config.trial if config.trial is not None else 0,
            params=config.params,
            seed=config.seed,
            epochs=config.epochs,
            data=data,
            cpus=config.cpus,
            input_stats=stats,
            report=channel,
            save_model=model_path,
        )
        objective.train(ctx)
    if not channel.history or not channel.history[-1].get("complete"):
        raise TrialFailed(
            f"the objective stopped after {len(channel.history)} of {config.epochs} epochs "
            "without reporting its last one"
        )
    if not model_path.is_file():
        raise TrialFailed(
            f"the objective of task {config.task!r} saved no model at {model_path}: it must "
            "train through hpsearch.training.fit_and_report, or save ctx.save_model itself"
        )
    final = channel.history[-1]
    metrics: dict[str, Any] = {
        "test": {k: v for k, v in final.items() if k.startswith("test_")},
        "last_epoch": final,
        "searched": (config.provenance or {}).get("test_metrics", {}),
        "epochs": config.epochs,
        "seed": config.seed,
        "input_stats": stats,
        "provenance": config.provenance,
    }
    (out / "history.json").write_text(json.dumps(channel.history, indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    trained = config.model_dump(mode="json") | {"input_stats": stats}
    (out / "config.yaml").write_text(yaml.safe_dump(trained, sort_keys=False))
    return metrics
