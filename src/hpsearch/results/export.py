"""Export a stored trial as a retraining config: everything ``hpsearch train`` needs, in YAML.

A search ends with a front of trials, but its models are gone: only parameters and metrics are
stored. To use one, it is trained again, with the same data, split, parameters, seed, epochs and
input normalisation. The config written here holds exactly those, read from storage (the study's
own record of its seed, space and normalisation wins over the study file, which may have
changed since), plus where it came from, so a retrained model can be traced back to its trial.

Which trial: ``--trial N``, or a ``--best`` rule (:func:`parse_rule`), or the whole Pareto set.
Only COMPLETE trials are exported: a stopped or failed trial never trained its full budget, so
"retraining" it would be a different model from the one the search judged.

The file format is documented in the README (section "Export and retrain") and checked on read
by :class:`hpsearch.results.retrain.TrainConfig`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from hpsearch._version import __version__
from hpsearch.errors import InputError
from hpsearch.results.storage import StudyRef, kept_model, mask_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpsearch.report import StudyView
    from hpsearch.spec import SearchSpace, Study

__all__ = [
    "CONFIG_FORMAT",
    "RULES_HELP",
    "Rule",
    "build_config",
    "export_trials",
    "knee",
    "parse_rule",
    "pick_best",
    "select_trials",
]

#: The ``format`` key every config carries, so a reader can refuse a file of another kind.
CONFIG_FORMAT = "hpsearch-train/1"
#: The ``--best`` rules, as ``hpsearch export --help`` lists them.
RULES_HELP = (
    "max:METRIC | min:METRIC (highest/lowest METRIC, e.g. max:val_accuracy); "
    "fastest-within:METRIC:TOL (least train_seconds among trials within TOL, absolute, of the "
    "best METRIC, e.g. fastest-within:val_accuracy:0.01); knee (the Pareto trial closest to "
    "the ideal point once each objective is scaled to [0, 1] over the front)"
)
#: What "fastest" means: the cost metric every objective reports.
FASTEST_METRIC = "train_seconds"


@dataclass(frozen=True)
class Rule:
    """A parsed ``--best`` rule.

    Attributes:
        kind: ``max``, ``min``, ``fastest-within`` or ``knee``.
        metric: The metric it ranks by (None for ``knee``).
        tolerance: ``fastest-within``'s absolute tolerance on ``metric``.
        text: The rule as written, recorded in the exported file.
    """

    kind: Literal["max", "min", "fastest-within", "knee"]
    metric: str | None
    tolerance: float
    text: str


def parse_rule(text: str) -> Rule:
    """Parse a ``--best`` rule (see :data:`RULES_HELP`).

    Raises:
        InputError: Not one of the rules, or a tolerance that is not a number >= 0.
    """
    parts = text.strip().split(":")
    kind = parts[0]
    if kind == "knee" and len(parts) == 1:
        return Rule("knee", None, 0.0, "knee")
    if kind in ("max", "min") and len(parts) == 2 and parts[1]:
        return Rule(kind, parts[1], 0.0, text)  # type: ignore[arg-type]
    if kind == "fastest-within" and len(parts) == 3 and parts[1]:
        try:
            tolerance = float(parts[2])
        except ValueError:
            tolerance = math.nan
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InputError(
                "--best",
                text,
                f"the tolerance {parts[2]!r} is not a number >= 0",
                "write e.g. --best fastest-within:val_accuracy:0.01",
            )
        return Rule("fastest-within", parts[1], tolerance, text)
    raise InputError("--best", text, "not a rule hpsearch knows", f"use one of: {RULES_HELP}")


def _direction(view: StudyView, attrs: Mapping[str, Any], metric: str) -> str:
    """Which way ``metric`` is better: as the study optimised it, else as its task says."""
    if metric in view.objectives:
        return view.directions[view.objectives.index(metric)].name.lower()
    task_metrics = (attrs.get("task_info") or {}).get("metrics") or {}
    direction = task_metrics.get(metric) if isinstance(task_metrics, dict) else None
    if direction in ("maximize", "minimize"):
        return str(direction)
    raise InputError(
        "--best",
        metric,
        f"hpsearch does not know whether higher or lower {metric!r} is better",
        f"use max:{metric} or min:{metric}, or an objective of the study: "
        f"{', '.join(view.objectives)}",
    )


def _complete(view: StudyView) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    complete = view.in_state(TrialState.COMPLETE)
    if not complete:
        raise InputError(
            "STUDY",
            view.name,
            "the study has no COMPLETE trial",
            "run the study until at least one trial trains its full budget",
        )
    return complete


def _scored(
    view: StudyView, trials: Sequence[FrozenTrial], metric: str
) -> list[tuple[FrozenTrial, float]]:
    scored = [(t, v) for t in trials if (v := view.metric(t, metric)) is not None]
    if not scored:
        raise InputError(
            "--best",
            metric,
            f"no COMPLETE trial has a value of {metric!r}",
            f"rank by an objective ({', '.join(view.objectives)}) or a test metric the trials "
            "report",
        )
    return scored


def knee(view: StudyView) -> FrozenTrial:
    """The knee of the front: the Pareto trial closest to the ideal point.

    Each objective is turned into a loss (negated when maximised) and scaled to [0, 1] over the
    front, so the ideal point (best of every objective) is the origin and no objective wins by
    its units (seconds against a fraction); the trial at the least Euclidean distance from the
    origin is the knee, the earliest on a tie. Works for any number of objectives >= 2.

    Raises:
        InputError: A single-objective study (it has no front to bend), or no COMPLETE trial.
    """
    from optuna.study import StudyDirection

    if len(view.objectives) < 2:
        raise InputError(
            "--best",
            "knee",
            f"study {view.name!r} has one objective, so its front has no knee",
            f"use --best max:{view.objectives[0]} or min:{view.objectives[0]}",
        )
    _complete(view)
    front = list(view.front)
    points = []
    for trial in front:
        point = view.point(trial)
        signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in view.directions]
        points.append([s * v for s, v in zip(signs, point or (), strict=True)])
    lows = [min(column) for column in zip(*points, strict=True)]
    highs = [max(column) for column in zip(*points, strict=True)]

    def distance(point: list[float]) -> float:
        scaled = [
            (v - lo) / (hi - lo) if hi > lo else 0.0
            for v, lo, hi in zip(point, lows, highs, strict=True)
        ]
        return math.sqrt(sum(s * s for s in scaled))

    ranked = sorted(zip(front, points, strict=True), key=lambda i: (distance(i[1]), i[0].number))
    return ranked[0][0]


def pick_best(view: StudyView, attrs: Mapping[str, Any], rule: Rule) -> FrozenTrial:
    """The COMPLETE trial ``rule`` picks (the earliest trial on a tie).

    Raises:
        InputError: No COMPLETE trial, a metric no trial has, or a metric of unknown direction.
    """
    if rule.kind == "knee" or rule.metric is None:  # parse_rule gives every other a metric
        return knee(view)
    complete = _complete(view)
    scored = _scored(view, complete, rule.metric)
    if rule.kind in ("max", "min"):
        sign = -1.0 if rule.kind == "max" else 1.0
        return min(scored, key=lambda i: (sign * i[1], i[0].number))[0]
    maximise = _direction(view, attrs, rule.metric) == "maximize"
    best = max(v for _, v in scored) if maximise else min(v for _, v in scored)
    within = [t for t, v in scored if abs(v - best) <= rule.tolerance + 1e-12]
    timed = _scored(view, within, FASTEST_METRIC)
    return min(timed, key=lambda i: (i[1], i[0].number))[0]


def select_trials(
    view: StudyView,
    attrs: Mapping[str, Any],
    *,
    trial: int | None = None,
    best: str | None = None,
    pareto: bool = False,
) -> list[tuple[FrozenTrial, str]]:
    """The trials to export, each with how it was selected (written into its file).

    With none of ``trial``, ``best`` and ``pareto``, a single-objective study exports its best
    trial; a multi-objective one has no single best and must be told which.

    Raises:
        InputError: No such trial, a trial that is not COMPLETE, a bad rule, or a
            multi-objective study without a choice.
    """
    from optuna.trial import TrialState

    if trial is not None:
        found = [t for t in view.trials if t.number == trial]
        if not found:
            numbers = [t.number for t in view.trials]
            span = f"0-{max(numbers)}" if numbers else "none"
            raise InputError(
                "--trial",
                str(trial),
                f"study {view.name!r} has no trial {trial} (trials: {span})",
                "give a trial number `hpsearch show STUDY` lists",
            )
        chosen = found[0]
        if chosen.state != TrialState.COMPLETE:
            reason = chosen.user_attrs.get("stop_reason")
            why = f" ({reason})" if reason else ""
            raise InputError(
                "--trial",
                str(trial),
                f"trial {trial} is {chosen.state.name}{why}, not COMPLETE: it never trained its "
                "full epoch budget, so there is no judged model to retrain",
                "export a COMPLETE trial (`hpsearch show STUDY` lists the Pareto set)",
            )
        return [(chosen, f"trial {trial}")]
    if pareto:
        _complete(view)
        return [(t, "pareto") for t in view.front]
    if best is None:
        if len(view.objectives) > 1:
            raise InputError(
                "STUDY",
                view.name,
                f"study {view.name!r} has {len(view.objectives)} objectives "
                f"({', '.join(view.objectives)}), so no single best trial",
                f"choose with --trial N, --pareto or --best RULE ({RULES_HELP})",
            )
        direction = view.directions[0].name.lower()
        best = f"{'max' if direction == 'maximize' else 'min'}:{view.objectives[0]}"
    rule = parse_rule(best)
    return [(pick_best(view, attrs, rule), rule.text)]


def stored_space(attrs: Mapping[str, Any]) -> SearchSpace | None:
    """The search space as stored with the study (its own record of what it searched)."""
    from hpsearch.spec import SearchSpace
    from hpsearch.spec._space import _Reader

    space = attrs.get("space")
    if not isinstance(space, dict) or not isinstance(space.get("params"), dict):
        return None
    source = Path(str(attrs.get("space_file", "storage")))
    try:
        tree = _Reader().group(space["params"], source, ("params",), ())
    except InputError:
        return None
    return SearchSpace(source=source, family=space.get("family"), tree=tree)


def _absolute(value: Any) -> Any:
    """Paths in a data section, made absolute (strings and lists of strings)."""
    if isinstance(value, list):
        return [_absolute(v) for v in value]
    return os.path.abspath(str(value))


def data_section(study: Study) -> dict[str, Any]:
    """The study's ``data`` as its file gives it (defaults left out), with absolute paths.

    ``simulate`` is left out: a retraining must read the very file the search read, never
    a newly simulated one.
    """
    data: dict[str, Any] = study.spec.data.model_dump(
        mode="json", exclude_unset=True, exclude={"simulate"}
    )
    data["x_key"], data["y_key"] = study.spec.data.x_key, study.spec.data.y_key
    if "path" in data:
        data["path"] = _absolute(data["path"])
    split = data.get("split")
    if isinstance(split, dict) and isinstance(split.get("files"), dict):
        split["files"] = {part: _absolute(p) for part, p in split["files"].items()}
    return data


def _study_file(ref: StudyRef, attrs: Mapping[str, Any]) -> Study:
    """The study file (given, or the one the stored study names) for its data section.

    Raises:
        InputError: STUDY was a name and the stored study file is gone.
    """
    if ref.study is not None:
        return ref.study
    from hpsearch.spec import load_study

    path = attrs.get("study_file")
    if not isinstance(path, str) or not Path(path).is_file():
        raise InputError(
            ref.source,
            ref.name,
            f"the study file the stored study names ({path!r}) is not found from {Path.cwd()}; "
            "its data section is needed",
            "give the study file instead of the name (hpsearch export STUDY_FILE ...), or run "
            "from the directory the study ran in",
        )
    return load_study(path)


def build_config(
    view: StudyView,
    attrs: Mapping[str, Any],
    trial: FrozenTrial,
    selected_by: str,
    *,
    study: Study,
    url: str,
) -> dict[str, Any]:
    """The retraining config of one COMPLETE trial (see the module docstring).

    Args:
        view: The stored study, read once.
        attrs: The study's user attributes (what the Recorder stored with it).
        trial: The trial.
        selected_by: How it was chosen (``trial 3``, ``knee``, ``max:val_accuracy``, ``pareto``).
        study: The study file, for the data section and the objective file.
        url: The storage URL (written masked).
    """
    from hpsearch.prepare import objective_of
    from hpsearch.seeding import derive_seed

    space = stored_space(attrs) or study.space
    try:
        params = space.decode(trial.params)
    except ValueError:
        params = study.space.decode(trial.params)
    study_seed = int(attrs.get("seed", study.spec.seed))
    seed = trial.user_attrs.get("seed")
    if not isinstance(seed, int):
        seed = derive_seed(study_seed, "trial", trial.number)
    objective_file = None
    if study.spec.objective_file is not None or study.task is None:
        objective_file = os.path.abspath(objective_of(study))
    values = {name: view.metric(trial, name) for name in view.objectives}
    tests = {
        k: v for k, v in sorted(trial.user_attrs.items()) if k.startswith("test_") and _plain(v)
    }
    data_record = attrs.get("data") if isinstance(attrs.get("data"), dict) else {}
    return {
        "format": CONFIG_FORMAT,
        "study": view.name,
        "task": str(attrs.get("task", study.spec.task)),
        "objective_file": objective_file,
        "study_seed": study_seed,
        "data": data_section(study),
        "trial": trial.number,
        "params": params,
        "epochs": int(attrs.get("epochs", study.spec.budget.epochs)),
        "seed": int(seed),
        "cpus": study.spec.resources.cpus_per_trial,
        "deterministic": study.spec.deterministic,
        "input_stats": dict(attrs.get("input_stats") or {}),
        "provenance": {
            "study": view.name,
            "storage": mask_url(url),
            "study_file": os.path.abspath(study.source),
            "trial": trial.number,
            "selected_by": selected_by,
            "objectives": values,
            "test_metrics": tests,
            "n_params": trial.user_attrs.get("n_params"),
            "split_fingerprint": (data_record or {}).get("split_fingerprint"),
            "trained_with": trial.user_attrs.get("hpsearch_version"),
            "exported_with": __version__,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _dump(config: Mapping[str, Any]) -> str:
    header = (
        f"# hpsearch retraining config ({CONFIG_FORMAT}) of trial {config['trial']} of study "
        f"{config['study']!r}\n# retrain: hpsearch train THIS_FILE [--epochs E] [--out DIR]\n"
    )
    return header + yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def export_trials(
    ref: StudyRef,
    stored: optuna.Study,
    out: Path,
    *,
    trial: int | None = None,
    best: str | None = None,
    pareto: bool = False,
) -> list[tuple[Path, dict[str, Any]]]:
    """Write the chosen trials' configs: one file, or for ``pareto`` a directory of them.

    ``--pareto`` writes ``OUT/trial-<n>.yaml`` per Pareto trial (``OUT`` is a directory,
    made if missing), so each file is a config ``hpsearch train`` reads as it is.

    Returns:
        Each written path with its config.

    Raises:
        InputError: See :func:`select_trials`; also ``out`` being a directory for one trial.
    """
    from hpsearch.report import StudyView

    view = StudyView.read(stored)
    attrs = stored.user_attrs
    chosen = select_trials(view, attrs, trial=trial, best=best, pareto=pareto)
    study = _study_file(ref, attrs)
    configs = [
        (t, build_config(view, attrs, t, how, study=study, url=ref.url)) for t, how in chosen
    ]
    written = []
    if pareto:
        out.mkdir(parents=True, exist_ok=True)
        for t, config in configs:
            path = out / f"trial-{t.number}.yaml"
            _with_model(config, attrs, t.number, path)
            path.write_text(_dump(config))
            written.append((path, config))
        return written
    if out.is_dir():
        raise InputError(
            "-o",
            str(out),
            "is a directory; one trial is written to one file",
            "give a file name such as -o best.yaml (a directory is for --pareto)",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    _with_model(configs[0][1], attrs, configs[0][0].number, out)
    out.write_text(_dump(configs[0][1]))
    return [(out, configs[0][1])]


def _with_model(config: dict[str, Any], attrs: Mapping[str, Any], number: int, out: Path) -> None:
    """Copy the trial's kept model beside the config ``out`` and name it in the config.

    A study with ``keep_models`` saved it when the trial completed; with it, the exported
    trial needs no retraining (the config's ``input_stats`` say how to normalise its inputs).
    """
    kept = kept_model(attrs, number)
    if kept is None:
        return
    target = out.with_suffix(".keras")
    shutil.copyfile(kept, target)
    config["model"] = target.name
