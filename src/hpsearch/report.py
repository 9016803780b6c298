"""Results: the Pareto table in the terminal and the Pareto plot as a plotly HTML page.

Both read the stored study with plain Optuna, so they show exactly what storage holds, and both
draw in the study's own objectives (``study.user_attrs["objectives"]``, in order, with
``study.directions``): a report that assumed a cost axis would show a study of other objectives
against a metric it never optimized.

The front is the set of non-dominated COMPLETE trials, as ``study.best_trials`` defines it.
Trials the scheduler stopped early are drawn apart, at their partial values, and never enter the
front: half-trained values are not comparable to finished ones. Test metrics are shown, never
used to choose.

A stored study is read once per report (:class:`StudyView`): each read of ``study.user_attrs``
or of the trials is a storage round trip and a deep copy, and a report of a few hundred trials
that looked a metric up through the study would read storage a thousand times.

A study whose space first chooses the model family (the categorical parameter
:data:`FAMILY_PARAM`, e.g. ``model = resnet | lstm | lstm_fcn | cnn``) is also compared family
by family, as seed 000 compared its networks: a table of each family's best trial and a plot
coloured by family. The front stays one set across families: a family is a parameter like any
other, and a Pareto front per family would hide which family actually wins.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

__all__ = [
    "FAMILY_PARAM",
    "StudyView",
    "families",
    "family_table",
    "pareto_figure",
    "pareto_table",
    "pareto_trials",
    "print_report",
    "state_counts",
    "write_pareto_html",
]

#: Units of metrics hpsearch knows, for axis titles; other metrics are titled by name alone.
_UNITS = {"train_seconds": "s"}
#: How the table writes a metric; accuracies and losses read best with four decimals.
_FORMATS = {"train_seconds": ".1f"}
_DEFAULT_FORMAT = ".4f"

_FRONT_COLOR = "#d62728"
_STYLE_COMPLETE = {"color": "#9aa5b1", "size": 9}
_STYLE_FRONT = {"color": _FRONT_COLOR, "size": 12}
_STYLE_PRUNED = {"color": "#1f77b4", "size": 8, "symbol": "x", "opacity": 0.6}
_LABEL_COMPLETE = "complete (dominated)"
_LABEL_PRUNED = "stopped early by the scheduler (partial values, not on the front)"

#: The categorical parameter that picks the model family (a ``choice`` of the search space,
#: whose options' parameters are stored as ``model.<family>.<name>``).
FAMILY_PARAM = "model"
#: The family of a drawn trial that lacks :data:`FAMILY_PARAM` in a families study (a trial
#: stored by an older space): shown as a family of its own rather than dropped.
_NO_FAMILY = f"(no {FAMILY_PARAM})"
#: Family colours (Okabe-Ito, readable by colour-blind readers), by the family's place among the
#: choice's options, so a family keeps its colour across studies of one space; the front's red
#: is left out, and the faint yellow comes last.
_FAMILY_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_FRONT_OUTLINE = {"color": "black", "width": 1.5}
#: The columns of the per-family table for a study stored without its task's (``table_metrics``,
#: written since tasks exist): seed 000's comparison of model families, in its order.
_FAMILY_METRICS = ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_seconds")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None: user attributes are JSON and may hold anything."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _metric(trial: FrozenTrial, objectives: Sequence[str], name: str) -> float | None:
    """A metric of a trial, never another metric's value under its name.

    ``trial.values`` holds the objectives only for a COMPLETE trial. ``study.tell(...,
    state=PRUNED)`` gives a single-objective trial its last intermediate value as its value,
    and intermediate values are the scheduler's metric, which need not be the objective (older
    stores hold such trials); so for every other state the metric comes from the user
    attributes the Recorder wrote.

    Args:
        trial: The trial.
        objectives: The study's objectives, in the order of ``trial.values``.
        name: The metric.

    Returns:
        The finite value, or None when the trial has none.
    """
    if trial.state == TrialState.COMPLETE and trial.values is not None and name in objectives:
        index = objectives.index(name)
        if index < len(trial.values):
            return _number(trial.values[index])
    return _number(trial.user_attrs.get(name))


def _family_value(trial: FrozenTrial) -> str | None:
    """The trial's model family, when it has the categorical :data:`FAMILY_PARAM`.

    Only a categorical counts: a numeric parameter that happens to be called ``model`` picks no
    family, and grouping by its values would draw one colour per float.
    """
    if FAMILY_PARAM not in trial.params:
        return None
    if not isinstance(trial.distributions.get(FAMILY_PARAM), CategoricalDistribution):
        return None
    return str(trial.params[FAMILY_PARAM])


def _table_metrics(attrs: dict[str, Any]) -> tuple[str, ...]:
    """The task's table columns as stored with the study, else seed 000's."""
    stored = attrs.get("table_metrics")
    if isinstance(stored, list) and stored and all(isinstance(m, str) for m in stored):
        return tuple(stored)
    return _FAMILY_METRICS


def _objective_names(study: optuna.Study, attrs: dict[str, Any], count: int) -> tuple[str, ...]:
    """The objectives' names: hpsearch's own record, else Optuna's metric names, else generic.

    A study written by hpsearch always has ``user_attrs["objectives"]``; the fallbacks keep the
    report usable on a study written by other tools, whose metric names live elsewhere.
    """
    names = attrs.get("objectives")
    if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
        return tuple(names)
    metric_names = study.metric_names
    if metric_names is not None and len(metric_names) == count:
        return tuple(metric_names)
    return ("value",) if count == 1 else tuple(f"value_{i}" for i in range(count))


def _non_dominated(points: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
    """A mask of the rows of ``points`` no other row dominates (Optuna's definition).

    Computed here from the trials already read, because ``study.best_trials`` would read every
    trial from storage again. Equal rows do not dominate each other, so ties stay on the front
    together, as in ``study.best_trials``. (hpsearch sets no constraints, so none are applied.)
    """
    signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions])
    losses = points * signs
    keep = np.ones(len(losses), dtype=bool)
    for i, row in enumerate(losses):
        dominated_by = np.all(losses <= row, axis=1) & np.any(losses < row, axis=1)
        keep[i] = not dominated_by.any()
    return keep


@dataclass(frozen=True)
class StudyView:
    """A stored study read once: everything the table, the plot and the counts need.

    Build it with :meth:`read`, then pass it to any function of this module in place of the
    study; none of them reads storage again.

    Attributes:
        name: The study's name.
        objectives: The objectives' metric names, in the order of ``trial.values``.
        directions: Each objective's direction, in the same order.
        trials: Every trial of the study, in any state.
        table_metrics: The columns its task compares model families by (the study's
            ``table_metrics``: accuracies for a classification, explained variance for a
            regression).
        attrs: The study's user attributes as stored (task, data provenance, seed, searcher),
            for the HTML report's error bars, reference lines and provenance.
    """

    name: str
    objectives: tuple[str, ...]
    directions: tuple[StudyDirection, ...]
    trials: tuple[FrozenTrial, ...]
    table_metrics: tuple[str, ...] = _FAMILY_METRICS
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def read(cls, study: optuna.Study) -> StudyView:
        """Read a study's attributes and trials from storage, once each."""
        directions = tuple(study.directions)
        attrs = study.user_attrs
        return cls(
            name=study.study_name,
            objectives=_objective_names(study, attrs, len(directions)),
            directions=directions,
            trials=tuple(study.get_trials(deepcopy=False)),
            table_metrics=_table_metrics(attrs),
            attrs=attrs,
        )

    def metric(self, trial: FrozenTrial, name: str) -> float | None:
        """A metric of a trial (see :func:`_metric` for where it is taken from)."""
        return _metric(trial, self.objectives, name)

    def point(self, trial: FrozenTrial) -> tuple[float, ...] | None:
        """The trial's objective values, or None when it lacks any of them."""
        values = [self.metric(trial, name) for name in self.objectives]
        if any(v is None for v in values):
            return None
        return tuple(v for v in values if v is not None)

    def in_state(self, state: TrialState) -> list[FrozenTrial]:
        """The trials in ``state``, by number."""
        return [t for t in self.trials if t.state == state]

    @cached_property
    def family_names(self) -> tuple[str, ...]:
        """The model families, in the order of the choice's options; empty without families.

        The options come from the stored distributions, so a family the search never sampled
        (or never finished) is listed too: its absence from the results is itself a finding.
        Values no distribution names follow, then :data:`_NO_FAMILY` when a COMPLETE or PRUNED
        trial lacks the parameter, so every drawn trial belongs to exactly one family.
        """
        names: dict[str, None] = {}
        for trial in self.trials:
            distribution = trial.distributions.get(FAMILY_PARAM)
            if isinstance(distribution, CategoricalDistribution):
                names.update((str(choice), None) for choice in distribution.choices)
        names.update((v, None) for t in self.trials if (v := _family_value(t)) is not None)
        if names and any(
            _family_value(t) is None
            for t in self.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ):
            names[_NO_FAMILY] = None
        return tuple(names)

    @cached_property
    def family_colors(self) -> dict[str, str]:
        """Each family's colour, shared by the figure's traces and the front's markers."""
        return {
            name: _FAMILY_COLORS[i % len(_FAMILY_COLORS)]
            for i, name in enumerate(self.family_names)
        }

    def family(self, trial: FrozenTrial) -> str | None:
        """The trial's family in a families study (:data:`_NO_FAMILY` if it has none), else None."""
        if not self.family_names:
            return None
        value = _family_value(trial)
        return _NO_FAMILY if value is None else value

    @cached_property
    def front(self) -> tuple[FrozenTrial, ...]:
        """Non-dominated COMPLETE trials, best first by the first objective, then by number."""
        complete = [(t, p) for t in self.in_state(TrialState.COMPLETE) if (p := self.point(t))]
        if not complete:
            return ()
        mask = _non_dominated(np.array([p for _, p in complete]), self.directions)
        sign = 1.0 if self.directions[0] == StudyDirection.MINIMIZE else -1.0
        front = sorted(
            (item for item, keep in zip(complete, mask, strict=True) if keep),
            key=lambda item: (sign * item[1][0], item[0].number),
        )
        return tuple(t for t, _ in front)

    def test_counterparts(self, trials: Sequence[FrozenTrial]) -> list[str]:
        """``test_X`` for each objective ``val_X``, when one of ``trials`` has it.

        A front chosen on validation metrics is read next to its test metrics; the names follow
        the objectives so a study of another metric shows its own test score.
        """
        names = []
        for objective in self.objectives:
            if not objective.startswith("val_"):
                continue
            test = "test_" + objective.removeprefix("val_")
            if test not in self.objectives and any(
                self.metric(t, test) is not None for t in trials
            ):
                names.append(test)
        return names


def _view(study: optuna.Study | StudyView) -> StudyView:
    return study if isinstance(study, StudyView) else StudyView.read(study)


def state_counts(study: optuna.Study | StudyView) -> Counter[str]:
    """How many trials ended in each state."""
    return Counter(t.state.name for t in _view(study).trials)


def pareto_trials(study: optuna.Study | StudyView) -> list[FrozenTrial]:
    """Non-dominated COMPLETE trials, best first by the first objective."""
    return list(_view(study).front)


def families(study: optuna.Study | StudyView) -> dict[str, list[FrozenTrial]]:
    """COMPLETE trials grouped by model family, by number; empty for a study without families.

    Families appear in the order of the choice's options, and only those with a COMPLETE
    trial: the finished trials are the ones whose values compare.
    """
    view = _view(study)
    grouped: dict[str, list[FrozenTrial]] = {name: [] for name in view.family_names}
    for trial in view.in_state(TrialState.COMPLETE):
        family = view.family(trial)
        if family is not None:
            grouped[family].append(trial)
    return {name: trials for name, trials in grouped.items() if trials}


def _fmt(value: float | None, name: str) -> str:
    return "-" if value is None else format(value, _FORMATS.get(name, _DEFAULT_FORMAT))


def _params_cell(trial: FrozenTrial) -> str:
    n_params = trial.user_attrs.get("n_params")
    return f"{n_params:,}" if isinstance(n_params, int) and not isinstance(n_params, bool) else "-"


def _epochs_cell(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get("epochs_reached", "-"))


def _axis_title(name: str) -> str:
    unit = _UNITS.get(name)
    return f"{name} ({unit})" if unit else name


def pareto_table(study: optuna.Study | StudyView) -> Table:
    """The Pareto-optimal trials as a rich table: objectives, test counterparts, size, epochs."""
    view = _view(study)
    front = view.front
    tests = view.test_counterparts(front)
    table = Table(title=f"Pareto-optimal trials of {view.name!r}")
    table.add_column("trial", justify="right")
    for name in (*view.objectives, *tests):
        table.add_column(name, justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("epochs", justify="right")
    for trial in front:
        table.add_row(
            str(trial.number),
            *(_fmt(view.metric(trial, name), name) for name in (*view.objectives, *tests)),
            _params_cell(trial),
            _epochs_cell(trial),
        )
    return table


def _best(view: StudyView, trials: Sequence[FrozenTrial]) -> tuple[FrozenTrial, float] | None:
    """The best of ``trials`` by the first objective in its direction, earliest on a tie."""
    sign = 1.0 if view.directions[0] == StudyDirection.MINIMIZE else -1.0
    scored = [(t, v) for t in trials if (v := view.metric(t, view.objectives[0])) is not None]
    if not scored:
        return None
    return min(scored, key=lambda item: (sign * item[1], item[0].number))


def family_table(study: optuna.Study | StudyView) -> Table | None:
    """Seed 000's comparison: each model family's best trial, or None without families.

    The best trial is chosen by the first objective alone (the one a single-number comparison
    of families would use); its test metrics are shown beside it and never used to choose.
    Rows run from the best family to the worst; families without a COMPLETE trial follow, with
    their counts, so a family that never finishes is seen rather than silently missing.
    Columns are the task's (for a classification seed 000's losses, accuracies and training
    time), then any objective they lack.
    """
    view = _view(study)
    if not view.family_names:
        return None
    objective = view.objectives[0]
    metrics = list(view.table_metrics)
    for name in (*view.objectives, *view.test_counterparts(view.in_state(TrialState.COMPLETE))):
        if name not in metrics:
            metrics.append(name)
    table = Table(
        title=f"Best trial per model family of {view.name!r}",
        caption=(
            f"best by {objective} ({_direction_word(view.directions[0])}); "
            "test metrics shown, never used to choose"
        ),
    )
    table.add_column("family")
    table.add_column("trials (complete/pruned)", justify="right")
    table.add_column("trial", justify="right")
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("epochs", justify="right")

    counts = Counter((view.family(t), t.state) for t in view.trials)
    complete = families(view)
    best = {name: b for name in complete if (b := _best(view, complete[name])) is not None}
    sign = 1.0 if view.directions[0] == StudyDirection.MINIMIZE else -1.0
    ranked = sorted(best, key=lambda name: (sign * best[name][1], best[name][0].number))
    for name in (*ranked, *(n for n in view.family_names if n not in best)):
        count = f"{counts[name, TrialState.COMPLETE]}/{counts[name, TrialState.PRUNED]}"
        if name not in best:
            table.add_row(name, count, "no complete trial", *("-" for _ in metrics), "-", "-")
            continue
        trial = best[name][0]
        table.add_row(
            name,
            count,
            str(trial.number),
            *(_fmt(view.metric(trial, m), m) for m in metrics),
            _params_cell(trial),
            _epochs_cell(trial),
        )
    return table


def _hover(view: StudyView, trial: FrozenTrial) -> str:
    lines = [f"trial {trial.number} ({trial.state.name})"]
    family = view.family(trial)
    if family is not None:
        lines.append(f"{FAMILY_PARAM}: {family}")
    lines += [f"{name}: {_fmt(view.metric(trial, name), name)}" for name in view.objectives]
    lines += [
        f"{name}: {_fmt(view.metric(trial, name), name)}"
        for name in view.test_counterparts([trial])
    ]
    lines.append(f"epochs: {trial.user_attrs.get('epochs_reached', '-')}")
    if trial.state != TrialState.COMPLETE and "stop_reason" in trial.user_attrs:
        lines.append(f"stopped: {trial.user_attrs['stop_reason']}")
    lines += [
        f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
        for k, v in trial.params.items()
        if family is None or k != FAMILY_PARAM  # already shown, second line
    ]
    return "<br>".join(lines)


#: A trial the figure draws, with its objective values in the study's order.
_Drawn = tuple[FrozenTrial, tuple[float, ...]]


@dataclass(frozen=True)
class _Groups:
    """The trials a figure draws, each with its objective values; the rest are counted."""

    complete: list[_Drawn]
    front: list[_Drawn]
    pruned: list[_Drawn]
    #: PRUNED trials without a partial value of every objective: nowhere to draw them.
    pruned_undrawn: list[FrozenTrial]


def _groups(view: StudyView) -> _Groups:
    front_numbers = {t.number for t in view.front}
    complete: list[_Drawn] = []
    front: list[_Drawn] = []
    pruned: list[_Drawn] = []
    undrawn: list[FrozenTrial] = []
    for trial in view.trials:
        point = view.point(trial)
        if trial.state == TrialState.COMPLETE and point is not None:
            (front if trial.number in front_numbers else complete).append((trial, point))
        elif trial.state == TrialState.PRUNED:
            if point is None:
                undrawn.append(trial)
            else:
                pruned.append((trial, point))
    order = {t.number: i for i, t in enumerate(view.front)}
    front.sort(key=lambda item: order[item[0].number])
    return _Groups(complete, front, pruned, undrawn)


def _pruned_label(pruned: Sequence[_Drawn], undrawn: int, prefix: str = "") -> str:
    label = f"{prefix}{_LABEL_PRUNED} [{len(pruned)}]"
    if undrawn:
        label += f", {undrawn} more without partial values"
    return label


@dataclass(frozen=True)
class _Layer:
    """One trace of a figure: its legend name, its trials, their marker and legend group."""

    name: str
    items: list[_Drawn]
    marker: dict[str, Any]
    #: The front (or the best trials of one objective): the figure draws it highlighted.
    is_front: bool = False
    #: The family the trace belongs to, so its legend entries toggle together.
    group: str | None = None


def _layers(view: StudyView, groups: _Groups, front: list[_Drawn], front_name: str) -> list[_Layer]:
    """The traces of a figure, with the front given in the order the figure draws it.

    Without families: dominated COMPLETE trials, the front, stopped trials, as three traces.
    With families: one dominated and one stopped trace per family in the family's colour
    (both drawn even when empty, so the legend names every family's colour), and the front
    last, on top, as one trace whose markers take each trial's family colour: splitting the
    front by family would break the staircase into pieces that no longer show what is
    attainable.
    """
    if not view.family_names:
        return [
            _Layer(f"{_LABEL_COMPLETE} [{len(groups.complete)}]", groups.complete, _STYLE_COMPLETE),
            _Layer(f"{front_name} [{len(front)}]", front, _STYLE_FRONT, is_front=True),
            _Layer(
                _pruned_label(groups.pruned, len(groups.pruned_undrawn)),
                groups.pruned,
                _STYLE_PRUNED,
            ),
        ]
    colors = view.family_colors
    complete: list[_Layer] = []
    pruned: list[_Layer] = []
    for name, color in colors.items():
        items = [item for item in groups.complete if view.family(item[0]) == name]
        complete.append(
            _Layer(
                f"{name}: {_LABEL_COMPLETE} [{len(items)}]",
                items,
                {**_STYLE_COMPLETE, "color": color},
                group=name,
            )
        )
        items = [item for item in groups.pruned if view.family(item[0]) == name]
        undrawn = sum(view.family(t) == name for t in groups.pruned_undrawn)
        pruned.append(
            _Layer(
                _pruned_label(items, undrawn, prefix=f"{name}: "),
                items,
                {**_STYLE_PRUNED, "color": color},
                group=name,
            )
        )
    front_marker = {
        **_STYLE_FRONT,
        "color": [colors[str(view.family(t))] for t, _ in front],
        "line": _FRONT_OUTLINE,
    }
    front_layer = _Layer(f"{front_name} [{len(front)}]", front, front_marker, is_front=True)
    return [*complete, *pruned, front_layer]


def _direction_word(direction: StudyDirection) -> str:
    return "max" if direction == StudyDirection.MAXIMIZE else "min"


def _title(view: StudyView) -> str:
    objectives = ", ".join(
        f"{name} ({_direction_word(d)})"
        for name, d in zip(view.objectives, view.directions, strict=True)
    )
    return f"{view.name}: {objectives}"


def _plane_figure(view: StudyView) -> Any:
    """Two objectives: the second on x, the first on y, the front as a staircase.

    The staircase shows what is attainable: for each x, the best y of any front trial whose x
    is as good or better. With the front sorted from the best x to the worst, that is y held
    from each point until the next point's x, then the step to its y: plotly's ``hv``, whether
    x is minimized (sorted ascending) or maximized (sorted descending), and whichever way y
    goes.
    """
    import plotly.graph_objects as go

    groups = _groups(view)
    x_best_first = view.directions[1] == StudyDirection.MINIMIZE
    front = sorted(
        groups.front,
        key=lambda item: (item[1][1] if x_best_first else -item[1][1], item[0].number),
    )
    figure = go.Figure()
    for layer in _layers(view, groups, front, "Pareto front"):
        figure.add_trace(
            go.Scatter(
                x=[p[1] for _, p in layer.items],
                y=[p[0] for _, p in layer.items],
                mode="lines+markers" if layer.is_front else "markers",
                line={"shape": "hv", "color": _FRONT_COLOR} if layer.is_front else None,
                name=layer.name,
                marker=layer.marker,
                legendgroup=layer.group,
                text=[_hover(view, t) for t, _ in layer.items],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_layout(
        title=_title(view),
        xaxis_title=_axis_title(view.objectives[1]),
        yaxis_title=_axis_title(view.objectives[0]),
    )
    return figure


def _history_figure(view: StudyView) -> Any:
    """One objective: its value per trial number, with the best so far as a staircase.

    The best-so-far line runs over COMPLETE trials only (pruned values are partial), one point
    per COMPLETE trial, held flat until the next: ``hv``.
    """
    import plotly.graph_objects as go

    groups = _groups(view)
    complete = sorted(groups.complete + groups.front, key=lambda item: item[0].number)
    better = min if view.directions[0] == StudyDirection.MINIMIZE else max
    best_so_far: list[float] = []
    for _, (value,) in complete:
        best_so_far.append(better(best_so_far[-1], value) if best_so_far else value)
    front = sorted(groups.front, key=lambda item: item[0].number)
    figure = go.Figure()
    for layer in _layers(view, groups, front, "best"):
        figure.add_trace(
            go.Scatter(
                x=[t.number for t, _ in layer.items],
                y=[p[0] for _, p in layer.items],
                mode="markers",
                name=layer.name,
                marker=layer.marker,
                legendgroup=layer.group,
                text=[_hover(view, t) for t, _ in layer.items],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=[t.number for t, _ in complete],
            y=best_so_far,
            mode="lines",
            line={"shape": "hv", "color": _FRONT_COLOR},
            name="best so far",
            hoverinfo="skip",
        )
    )
    figure.update_layout(
        title=_title(view),
        xaxis_title="trial",
        yaxis_title=_axis_title(view.objectives[0]),
    )
    return figure


def _matrix_figure(view: StudyView) -> Any:
    """Three or more objectives: a scatter matrix of every pair, the front highlighted."""
    import plotly.graph_objects as go

    groups = _groups(view)
    figure = go.Figure()
    for layer in _layers(view, groups, groups.front, "Pareto front"):
        figure.add_trace(
            go.Splom(
                dimensions=[
                    {"label": _axis_title(objective), "values": [p[i] for _, p in layer.items]}
                    for i, objective in enumerate(view.objectives)
                ],
                name=layer.name,
                marker=layer.marker,
                legendgroup=layer.group,
                text=[_hover(view, t) for t, _ in layer.items],
                hovertemplate="%{text}<extra></extra>",
                diagonal_visible=False,
                showupperhalf=False,
            )
        )
    figure.update_layout(title=_title(view), height=300 * len(view.objectives))
    return figure


def pareto_figure(study: optuna.Study | StudyView) -> Any:
    """A plotly figure of the study in its objectives' space.

    One objective: value per trial with the best so far; two: the plane of both with the front
    as a staircase; more: a scatter matrix. COMPLETE trials off the front, the front, and
    scheduler-stopped trials (at their partial values) are separate traces, with their counts
    in the legend; failed trials have no values and are not drawn. In a study of model
    families, the trials off the front are split by family (one colour each, legend-grouped)
    and the front, still one trace, colours each marker by its family.
    """
    view = _view(study)
    count = len(view.objectives)
    figure = (
        _history_figure(view)
        if count == 1
        else _plane_figure(view)
        if count == 2
        else _matrix_figure(view)
    )
    figure.update_layout(template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return figure


def write_pareto_html(study: optuna.Study | StudyView, path: Path) -> Path:
    """Write the Pareto plot as a self-contained HTML page (works offline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pareto_figure(study).write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def print_report(study: optuna.Study | StudyView, console: Console, html: Path | None) -> None:
    """Print state counts, the Pareto table and, with families, the family comparison.

    The plot is written when ``html`` is given. The family table comes even without a front:
    its counts show which families are still running or never finish.
    """
    view = _view(study)
    counts = state_counts(view)
    console.print(
        "Trials: "
        + ", ".join(
            f"{state} {counts.get(state, 0)}" for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
        )
    )
    if view.front:
        console.print(pareto_table(view))
    else:
        console.print("[yellow]No trial completed its full budget yet: no Pareto front.[/]")
    by_family = family_table(view)
    if by_family is not None:
        console.print(by_family)
    if html is not None:
        write_pareto_html(view, html)
        console.print(f"Pareto plot: {html.resolve()}")
