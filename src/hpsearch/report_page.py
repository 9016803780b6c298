"""The study report as one self-contained HTML page, with each figure also as PNG and PDF.

``hpsearch report`` writes it from what storage holds (:class:`~hpsearch.report.StudyView`, read
once), so a reader offline, a referee or a notebook sees the same numbers the terminal printed:

* the front in the objectives' plane, with readable axis titles and units, binomial error bars
  on accuracies (``sqrt(p (1 - p) / n)``, ``n`` the validation events the study stored), the
  task's baseline and the chance level as lines, dominated trials greyed, trials the scheduler
  stopped and trials that failed or were cut short drawn apart;
* the search's history (best value, and hypervolume for two objectives, over trials and over
  wall time), every trial's learning curve with where it stopped, parameter importances per
  objective and a parallel-coordinates view;
* tables of the Pareto set with its hyperparameters, the per-family comparison and the trial
  counts by state and stop reason; and the study's provenance.

plotly.js is written into the page once, in its head, and every figure is drawn from it: a page
of seven figures stays the size of one bundle (about 4.7 MB) plus the data, and opens without a
network. Static images go through plotly's kaleido, which drives a headless Chromium; where it
cannot start the page is still written and the reason is returned.
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
import platform
import shutil
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch._version import __version__
from hpsearch.provenance import package_versions
from hpsearch.report import (
    FAMILY_PARAM,
    StudyView,
    _fmt,
    _hover,
    family_table,
    pareto_figure,
)
from hpsearch.results.storage import trial_history

__all__ = [
    "ReportFiles",
    "binomial_error",
    "chance_level",
    "figures",
    "label",
    "reference_lines",
    "summary_markdown",
    "validation_events",
    "write_report",
]

#: Names a reader should not have to decode; other metrics are spelt out by :func:`label`.
_LABELS = {
    "train_seconds": "training time (s)",
    "n_params": "parameters",
    "epochs_reached": "epochs reached",
}
_PREFIXES = (("val_", "validation "), ("test_", "test "))
_GREY = "#b8bec6"
_FAIL_STYLE = {"color": "#444444", "size": 8, "symbol": "diamond-open"}
_STATE_COLORS = {"COMPLETE": "#0072B2", "PRUNED": "#E69F00", "FAIL": "#D55E00"}
#: Figures' names, in the page's order: also their file names and their HTML ids (``fig-NAME``).
FIGURES = ("pareto", "history", "curves", "importance", "parallel")


def label(name: str) -> str:
    """A metric or parameter as a reader writes it: ``val_accuracy`` -> "validation accuracy".

    Units follow in brackets (``train_seconds`` -> "training time (s)"); a dotted parameter
    (``model.resnet.filters``) keeps its path, underscores become spaces.
    """
    if name in _LABELS:
        return _LABELS[name]
    for prefix, words in _PREFIXES:
        if name.startswith(prefix):
            return words + label(name.removeprefix(prefix))
    if name.endswith("_seconds"):
        return f"{name.removesuffix('_seconds').replace('_', ' ')} (s)"
    return name.replace("_", " ")


def _is_accuracy(name: str) -> bool:
    """A metric that is a fraction of events right: binomial errors apply to it."""
    return name.removeprefix("val_").removeprefix("test_").endswith("accuracy")


def validation_events(attrs: Mapping[str, Any], metric: str) -> int | None:
    """How many events a metric was measured on: the stored split's val (or test) size.

    Returns:
        The count, or None when the study did not store its split (studies written before
        hpsearch kept ``data.split_sizes``, or by other tools): no error bar is drawn then.
    """
    part = "test" if metric.startswith("test_") else "val"
    data = attrs.get("data")
    sizes = data.get("split_sizes") if isinstance(data, Mapping) else None
    n = sizes.get(part) if isinstance(sizes, Mapping) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def binomial_error(p: float, n: int) -> float:
    """The standard error of an accuracy ``p`` measured on ``n`` events: sqrt(p(1-p)/n)."""
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def chance_level(attrs: Mapping[str, Any]) -> float | None:
    """1 / number of classes for a classification study, else None.

    The classes come from the stored ``data.class_names``, else ``task_info["n_classes"]``.
    """
    data = attrs.get("data")
    names = data.get("class_names") if isinstance(data, Mapping) else None
    if isinstance(names, list) and len(names) >= 2:
        return 1.0 / len(names)
    info = attrs.get("task_info")
    n = info.get("n_classes") if isinstance(info, Mapping) else None
    if isinstance(n, int) and not isinstance(n, bool) and n >= 2:
        return 1.0 / n
    return None


@dataclass(frozen=True)
class _Line:
    """A horizontal or vertical reference on an axis: a baseline or the chance level."""

    metric: str
    value: float
    name: str
    dash: str


def _baselines(attrs: Mapping[str, Any]) -> list[_Line]:
    """Baselines stored with the study: ``baseline`` as ``{metric, value, name}`` or a list."""
    stored = attrs.get("baseline", attrs.get("baselines"))
    items = stored if isinstance(stored, list) else [stored]
    lines = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        metric, value = item.get("metric"), item.get("value")
        if isinstance(metric, str) and isinstance(value, int | float) and math.isfinite(value):
            name = str(item.get("name") or "baseline")
            lines.append(
                _Line(metric, float(value), f"{name}: {label(metric)} {value:.4g}", "dash")
            )
    return lines


def reference_lines(attrs: Mapping[str, Any], axis_metric: str) -> list[_Line]:
    """The lines drawn on an axis of ``axis_metric``: baselines of its kind, then chance.

    A baseline scored on the test split (``test_accuracy``) is drawn on a validation-accuracy
    axis too: the same quantity on other events of the same data, the comparison a reader
    wants; its label says which split it was scored on.
    """
    base = axis_metric.removeprefix("val_").removeprefix("test_")
    lines = [
        line
        for line in _baselines(attrs)
        if line.metric.removeprefix("val_").removeprefix("test_") == base
    ]
    chance = chance_level(attrs) if _is_accuracy(axis_metric) else None
    if chance is not None:
        lines.append(_Line(axis_metric, chance, f"chance level {chance:.3g}", "dot"))
    return lines


# -- figures -----------------------------------------------------------------------------------


def _axes(view: StudyView) -> dict[str, str]:
    """Which objective each axis of the front figure shows (none for a scatter matrix)."""
    if len(view.objectives) == 1:
        return {"y": view.objectives[0]}
    if len(view.objectives) == 2:
        return {"x": view.objectives[1], "y": view.objectives[0]}
    return {}


def _failed_points(view: StudyView) -> tuple[list[tuple[FrozenTrial, tuple[float, ...]]], int]:
    """FAIL trials with a (partial) value of every objective, and how many have none."""
    drawn, undrawn = [], 0
    for trial in view.in_state(TrialState.FAIL):
        point = view.point(trial)
        if point is None:
            undrawn += 1
        else:
            drawn.append((trial, point))
    return drawn, undrawn


def front_figure(view: StudyView) -> Any:
    """The front in the objectives' space, as the page and the dashboard show it.

    It is :func:`hpsearch.report.pareto_figure` (same traces, same staircase, same hover with
    every hyperparameter) with: readable axis titles; binomial error bars on accuracy axes;
    dominated trials greyed (in a families study keeping their family's colour as outline);
    FAIL trials with partial values as a trace of their own; the stored baseline and the
    chance level as lines.
    """
    import plotly.graph_objects as go

    figure = pareto_figure(view)
    axes = _axes(view)
    notes = []
    for trace in figure.data:
        if not isinstance(trace, go.Scatter) or trace.name in (None, "best so far"):
            continue
        if "complete (dominated)" in trace.name:
            outline = trace.marker.color
            trace.marker.color = _GREY
            trace.marker.line = {"color": outline, "width": 1.5}
        for axis, metric in axes.items():
            if axis == "x" and len(view.objectives) == 1:
                continue
            n = validation_events(view.attrs, metric)
            if not _is_accuracy(metric):
                continue
            if n is None:
                notes.append(f"no error bars on {label(metric)}: the study did not store its size")
                continue
            values = trace.x if axis == "x" else trace.y
            errors = [binomial_error(float(v), n) for v in values]
            bars = {"type": "data", "array": errors, "visible": True, "thickness": 1, "width": 0}
            if axis == "x":
                trace.error_x = bars
            else:
                trace.error_y = bars
    failed, undrawn = _failed_points(view)
    if axes:
        name = f"failed or cut short (partial values) [{len(failed)}]"
        if undrawn:
            name += f", {undrawn} more without values"
        x_metric = axes.get("x")
        figure.add_trace(
            go.Scatter(
                x=[p[view.objectives.index(x_metric)] if x_metric else t.number for t, p in failed],
                y=[p[0] for _, p in failed],
                mode="markers",
                name=name,
                marker=_FAIL_STYLE,
                text=[_hover(view, t) for t, _ in failed],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    for axis, metric in axes.items():
        for line in reference_lines(view.attrs, metric):
            shape: dict[str, Any] = {
                "type": "line",
                "line": {"dash": line.dash, "color": "#555555", "width": 1.5},
                "name": line.name,
                "showlegend": True,
                "label": {"text": line.name, "textposition": "end", "font": {"size": 10}},
            }
            if axis == "y":
                shape.update(xref="x domain", x0=0, x1=1, yref="y", y0=line.value, y1=line.value)
            else:
                shape.update(yref="y domain", y0=0, y1=1, xref="x", x0=line.value, x1=line.value)
            figure.add_shape(shape)
    if axes:
        titles = {f"{axis}axis_title": label(metric) for axis, metric in axes.items()}
        figure.update_layout(**titles)
    else:
        for trace in figure.data:
            for dimension in trace.dimensions:
                dimension.label = label(str(dimension.label).split(" (")[0])
    directions = ", ".join(
        f"{label(n)} ({'max' if d == StudyDirection.MAXIMIZE else 'min'})"
        for n, d in zip(view.objectives, view.directions, strict=True)
    )
    title = f"{view.name}: {directions}"
    if notes:
        title += "<br><sub>" + "; ".join(sorted(set(notes))) + "</sub>"
    figure.update_layout(title=title, height=620)
    return figure


def _finished_at(trial: FrozenTrial, start: datetime) -> float | None:
    if trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - start).total_seconds()


def _losses(view: StudyView, points: np.ndarray) -> np.ndarray:
    signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in view.directions])
    return np.asarray(points * signs, dtype=float)


def hypervolume_2d(losses: np.ndarray, reference: np.ndarray) -> float:
    """The area two minimised objectives dominate up to ``reference`` (a sweep along x)."""
    inside = losses[np.all(losses < reference, axis=1)]
    area, lowest = 0.0, float(reference[1])
    for x, y in sorted(map(tuple, inside)):
        if y < lowest:
            area += (float(reference[0]) - x) * (lowest - y)
            lowest = y
    return area


def history_figure(view: StudyView) -> Any:
    """Best value of each objective (and hypervolume for two) over trials and over wall time.

    Only COMPLETE trials count: a partial value is not comparable. The hypervolume's reference
    point is the worst value of each objective among all COMPLETE trials, fixed for the whole
    curve so that it only rises.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    complete = sorted(
        ((t, p) for t in view.in_state(TrialState.COMPLETE) if (p := view.point(t))),
        key=lambda item: item[0].number,
    )
    starts = [t.datetime_start for t in view.trials if t.datetime_start is not None]
    start = min(starts) if starts else None
    rows = list(view.objectives) + (["hypervolume"] if len(view.objectives) == 2 else [])
    figure = make_subplots(
        rows=len(rows),
        cols=2,
        shared_xaxes="columns",
        subplot_titles=[f"{label(r)} {how}" for r in rows for how in ("by trial", "by wall time")],
        vertical_spacing=0.12 / max(1, len(rows) - 1) if len(rows) > 1 else 0.0,
    )
    points = np.array([p for _, p in complete]) if complete else np.zeros((0, len(rows)))
    losses = _losses(view, points) if complete else points
    reference = losses.max(axis=0) if complete else None
    for row, name in enumerate(rows, start=1):
        best: list[float] = []
        for i in range(len(complete)):
            if name == "hypervolume":
                assert reference is not None
                best.append(hypervolume_2d(losses[: i + 1], reference))
            else:
                k = view.objectives.index(name)
                value = float(points[i, k])
                better = min if view.directions[k] == StudyDirection.MINIMIZE else max
                best.append(better(best[-1], value) if best else value)
        numbers = [t.number for t, _ in complete]
        seconds = [_finished_at(t, start) if start else None for t, _ in complete]
        for col, xs in ((1, numbers), (2, seconds)):
            if name != "hypervolume":
                figure.add_trace(
                    go.Scatter(
                        x=xs,
                        y=points[:, view.objectives.index(name)].tolist(),
                        mode="markers",
                        marker={"color": _GREY, "size": 6},
                        name=f"{label(name)}: each complete trial",
                        showlegend=False,
                        text=[f"trial {n}" for n in numbers],
                        hovertemplate="%{text}: %{y:.4g}<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=best,
                    mode="lines",
                    line={"shape": "hv", "color": "#d62728"},
                    name=f"{label(name)}: best so far" if name != "hypervolume" else name,
                    showlegend=False,
                ),
                row=row,
                col=col,
            )
        figure.update_yaxes(title_text=label(name), row=row, col=1)
    figure.update_xaxes(title_text="trial", row=len(rows), col=1)
    figure.update_xaxes(
        title_text="wall time since the first trial started (s)", row=len(rows), col=2
    )
    figure.update_layout(
        title=f"{view.name}: search history ({len(complete)} complete trials)",
        height=280 * len(rows) + 120,
    )
    return figure


def _curve(trial: FrozenTrial, metric: str) -> list[tuple[int, float]]:
    """A trial's per-epoch values of ``metric``: its stored history, else intermediate values."""
    points: list[tuple[int, float]] = []
    for i, row in enumerate(trial_history(trial), start=1):
        value, epoch = row.get(metric), row.get("epoch", i)
        if isinstance(value, int | float) and math.isfinite(value) and isinstance(epoch, int):
            points.append((epoch, float(value)))
    if not points:
        points = [
            (int(step), float(value))
            for step, value in sorted(trial.intermediate_values.items())
            if math.isfinite(value)
        ]
    return points


def _progress_metric(view: StudyView) -> str:
    metric = view.attrs.get("progress_metric")
    return metric if isinstance(metric, str) else view.objectives[0]


def curves_figure(view: StudyView) -> Any:
    """Every trial's learning curve of the scheduler's metric, by state, with its stop point.

    Curves of one state are one trace, separated by gaps, so a study of a thousand trials is
    three traces, not a thousand. A trial that did not complete ends with a marker at its last
    epoch, one trace per stop reason: where the scheduler (or an error, or the run) stopped it.
    """
    import plotly.graph_objects as go

    metric = _progress_metric(view)
    figure = go.Figure()
    stops: dict[str, list[tuple[FrozenTrial, int, float]]] = {}
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        xs: list[float | None] = []
        ys: list[float | None] = []
        texts: list[str | None] = []
        count = 0
        for trial in view.trials:
            if trial.state.name != state:
                continue
            curve = _curve(trial, metric)
            if not curve:
                continue
            count += 1
            xs += [e for e, _ in curve] + [None]
            ys += [v for _, v in curve] + [None]
            texts += [f"trial {trial.number}"] * len(curve) + [None]
            if state != "COMPLETE":
                reason = str(trial.user_attrs.get("stop_reason", state.lower()))
                stops.setdefault(reason, []).append((trial, *curve[-1]))
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                connectgaps=False,
                line={"color": _STATE_COLORS[state], "width": 1},
                opacity=0.7,
                name=f"{state.lower()} [{count}]",
                text=texts,
                hovertemplate="%{text}, epoch %{x}: %{y:.4g}<extra></extra>",
            )
        )
    for reason, ends in sorted(stops.items()):
        figure.add_trace(
            go.Scatter(
                x=[e for _, e, _ in ends],
                y=[v for _, _, v in ends],
                mode="markers",
                marker={"symbol": "x", "size": 9},
                name=f"stopped: {reason} [{len(ends)}]",
                text=[f"trial {t.number} stopped ({reason})" for t, _, _ in ends],
                hovertemplate="%{text}, epoch %{x}: %{y:.4g}<extra></extra>",
            )
        )
    figure.update_layout(
        title=f"{view.name}: learning curves ({label(metric)} per epoch)",
        xaxis_title="epoch",
        yaxis_title=label(metric),
        height=520,
    )
    return figure


def _complete_study(view: StudyView) -> optuna.Study:
    """An in-memory study of the view's COMPLETE trials: Optuna's analyses want a study."""
    study = optuna.create_study(directions=list(view.directions))
    study.add_trials([t for t in view.in_state(TrialState.COMPLETE) if view.point(t)])
    return study


def _objective_loss(trial: FrozenTrial, index: int, sign: float) -> float:
    """An objective as a value to minimise: PED-ANOVA ranks low targets as the good ones."""
    return sign * float(trial.values[index])


def importances(view: StudyView) -> tuple[dict[str, dict[str, float]], str | None]:
    """Each objective's parameter importances (PED-ANOVA), or why there are none.

    PED-ANOVA is Optuna's evaluator that needs no scikit-learn (fANOVA and mean decrease in
    impurity fit scikit-learn's random forests, which hpsearch does not install) and is
    deterministic. It compares the best trials' parameter distribution with all of them: with
    fewer than four COMPLETE trials, or no parameter shared by all of them, it says nothing
    worth showing (and Optuna may raise).
    """
    complete = [t for t in view.in_state(TrialState.COMPLETE) if view.point(t)]
    if len(complete) < 4:
        return (
            {},
            f"parameter importances need at least 4 complete trials; there are {len(complete)}",
        )
    study = _complete_study(view)
    result: dict[str, dict[str, float]] = {}
    for k, name in enumerate(view.objectives):
        try:
            with warnings.catch_warnings():
                # PED-ANOVA warns that it ranks low targets first: the sign sees to that.
                warnings.simplefilter("ignore")
                result[name] = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=functools.partial(
                        _objective_loss,
                        index=k,
                        sign=-1.0 if view.directions[k] == StudyDirection.MAXIMIZE else 1.0,
                    ),
                )
        except (ValueError, RuntimeError, ImportError) as exc:
            return {}, f"parameter importances could not be computed: {exc}"
    if not any(result.values()):
        return {}, "no parameter is shared by every complete trial: no importances"
    return result, None


def importance_figure(view: StudyView, values: Mapping[str, Mapping[str, float]]) -> Any:
    """Horizontal bars of each objective's parameter importances, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(values)
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=[label(n) for n in names])
    for col, name in enumerate(names, start=1):
        ranked = sorted(values[name].items(), key=lambda item: item[1])
        figure.add_trace(
            go.Bar(
                x=[v for _, v in ranked],
                y=[p for p, _ in ranked],
                orientation="h",
                name=label(name),
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        figure.update_xaxes(title_text="importance (PED-ANOVA)", row=1, col=col)
    height = max(360, 28 * max(len(v) for v in values.values()) + 160)
    figure.update_layout(title=f"{view.name}: parameter importances", height=height)
    return figure


def parallel_figure(view: StudyView) -> Any | None:
    """Parallel coordinates of the COMPLETE trials: shared parameters, then the objectives.

    Only parameters every COMPLETE trial has (the family, and the parameters its options
    share) get an axis: a line cannot cross an axis it has no value on. Categories are drawn
    at integer positions named by tick labels. Lines are coloured by the first objective.
    """
    import plotly.graph_objects as go

    complete = [(t, p) for t in view.in_state(TrialState.COMPLETE) if (p := view.point(t))]
    if not complete:
        return None
    shared = set(complete[0][0].params)
    for trial, _ in complete[1:]:
        shared &= set(trial.params)
    params = sorted(shared, key=lambda n: (n != FAMILY_PARAM, n))
    dimensions = []
    for name in params:
        distribution = complete[0][0].distributions[name]
        if isinstance(distribution, CategoricalDistribution):
            choices = [str(c) for c in distribution.choices]
            values = [choices.index(str(t.params[name])) for t, _ in complete]
            dimensions.append(
                {
                    "label": label(name),
                    "values": values,
                    "tickvals": list(range(len(choices))),
                    "ticktext": choices,
                }
            )
        else:
            dimensions.append(
                {"label": label(name), "values": [t.params[name] for t, _ in complete]}
            )
    for k, name in enumerate(view.objectives):
        dimensions.append({"label": label(name), "values": [p[k] for _, p in complete]})
    figure = go.Figure(
        go.Parcoords(
            line={
                "color": [p[0] for _, p in complete],
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": label(view.objectives[0])}},
            },
            dimensions=dimensions,
        )
    )
    figure.update_layout(
        title=f"{view.name}: complete trials' parameters and objectives", height=520
    )
    return figure


@dataclass
class _Figures:
    """The page's figures by name, and a sentence for each one that could not be drawn."""

    drawn: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def curves_only(view: StudyView) -> dict[str, Any]:
    """The learning-curves figure alone (``{"curves": figure}``), when a trial has a curve."""
    if not any(_curve(t, _progress_metric(view)) for t in view.trials):
        return {}
    figure = curves_figure(view)
    figure.update_layout(template="plotly_white")
    return {"curves": figure}


def figures(view: StudyView) -> _Figures:
    """Every figure of the report, each drawn only when the study has what it needs."""
    result = _Figures()
    n_complete = sum(1 for t in view.in_state(TrialState.COMPLETE) if view.point(t))
    result.drawn["pareto"] = front_figure(view)
    if n_complete:
        result.drawn["history"] = history_figure(view)
    else:
        result.missing["history"] = "no trial is complete yet: no history of the best value"
    metric = _progress_metric(view)
    if any(_curve(t, metric) for t in view.trials):
        result.drawn["curves"] = curves_figure(view)
    else:
        result.missing["curves"] = "no trial stored a per-epoch value yet: no learning curves"
    values, why = importances(view)
    if values:
        result.drawn["importance"] = importance_figure(view, values)
    else:
        result.missing["importance"] = why or "no importances"
    parallel = parallel_figure(view)
    if parallel is not None:
        result.drawn["parallel"] = parallel
    else:
        result.missing["parallel"] = "no trial is complete yet: no parallel coordinates"
    for figure in result.drawn.values():
        figure.update_layout(template="plotly_white")
    return result


# -- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HtmlTable:
    """A table as the page writes it, kept as cells so tests read what is shown."""

    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    #: Long text cells (provenance) wrap; number tables stay one line a row.
    wrap: bool = False

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<p class='caption'>{html.escape(self.caption)}</p>" if self.caption else ""
        return (
            f"<h3>{html.escape(self.title)}</h3><div class='scroll'>"
            f"<table{' class=wrap' if self.wrap else ''}>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{caption}"
        )


def _param_cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def pareto_set_table(view: StudyView) -> HtmlTable:
    """The front with its objectives, test counterparts, size, epochs and every parameter."""
    front = view.front
    tests = view.test_counterparts(front)
    params: dict[str, None] = {}
    for trial in front:
        params.update((p, None) for p in trial.params)
    metrics = [*view.objectives, *tests]
    header = ["trial", *(label(m) for m in metrics), "parameters", "epochs", *params]
    rows = []
    for trial in front:
        n_params = trial.user_attrs.get("n_params")
        rows.append(
            [
                str(trial.number),
                *(_fmt(view.metric(trial, m), m) for m in metrics),
                f"{n_params:,}" if isinstance(n_params, int) else "-",
                str(trial.user_attrs.get("epochs_reached", "-")),
                *(_param_cell(trial.params[p]) if p in trial.params else "-" for p in params),
            ]
        )
    return HtmlTable(
        f"Pareto-optimal trials ({len(front)})",
        header,
        rows,
        "chosen on the objectives only; test metrics shown, never used to choose",
    )


def family_html_table(view: StudyView) -> HtmlTable | None:
    """The per-family comparison of :func:`hpsearch.report.family_table`, cell for cell."""
    table = family_table(view)
    if table is None:
        return None
    header = [
        label(str(c.header)) if "_" in str(c.header) else str(c.header) for c in table.columns
    ]
    columns = [[str(cell) for cell in c._cells] for c in table.columns]
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return HtmlTable("Best trial per model family", header, rows, str(table.caption or ""))


def counts_table(view: StudyView) -> HtmlTable:
    """Trials by state and stop reason: how the search spent its budget."""
    counts = Counter((t.state.name, str(t.user_attrs.get("stop_reason", "-"))) for t in view.trials)
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}
    rows = [
        [state, reason, str(n)]
        for (state, reason), n in sorted(
            counts.items(), key=lambda i: (order.get(i[0][0], 9), i[0][1])
        )
    ]
    return HtmlTable("Trials by state and stop reason", ["state", "stop reason", "trials"], rows)


def _joined(versions: Any) -> str:
    """``{"ray": "2.60.0", ...}`` as ``ray 2.60.0, ...``."""
    if not isinstance(versions, Mapping):
        return ""
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def _runs(runs: Any) -> str:
    """When each run of the study started and where (a resumed study has several)."""
    if not isinstance(runs, list):
        return ""
    return "; ".join(
        _replayed(run["replay"], run.get("started", "?"))
        if isinstance(run.get("replay"), Mapping)
        else f"{run.get('started', '?')} on {run.get('ray_address', '?')} Ray, "
        f"{len(run.get('nodes', []))} node(s)"
        for run in runs
        if isinstance(run, Mapping)
    )


def _replayed(replay: Mapping[str, Any], started: str) -> str:
    """A replay's line: no training, from which table, recorded where."""
    return (
        f"{started} replayed (no training, simulated clock, {replay.get('workers', '?')} "
        f"workers) from {replay.get('table', '?')}, recorded on {replay.get('recorded_on', '?')}"
    )


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provenance_table(view: StudyView) -> HtmlTable:
    """Where the results came from: data, split, seed, searcher, scheduler, budget, machine."""
    attrs = view.attrs
    data = attrs.get("data") if isinstance(attrs.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    info = attrs.get("task_info") if isinstance(attrs.get("task_info"), Mapping) else {}
    assert isinstance(info, Mapping)
    unknown = "not recorded in the study"
    rows: list[list[str]] = [
        ["study", view.name],
        ["task", _short(attrs.get("task", info.get("name", unknown)))],
        ["study file", _short(attrs.get("study_file", unknown))],
        ["space file", _short(attrs.get("space_file", unknown))],
        ["data files", _short(data.get("files", unknown))],
        ["data file attributes", _short(data.get("file_attrs") or unknown, limit=3000)],
        ["events", _short(data.get("n_events", unknown))],
        ["split sizes", _short(data.get("split_sizes", unknown))],
        ["split fingerprint", _short(data.get("split_fingerprint", unknown))],
        ["classes", _short(data.get("class_names") or unknown)],
        ["seed", _short(attrs.get("seed", unknown))],
        ["searcher", _short(attrs.get("searcher", unknown))],
        [
            "scheduler",
            _short(attrs.get("scheduler", unknown))
            if "scheduler" in attrs
            else f"metric {attrs.get('progress_metric', '?')} ({attrs.get('progress_mode', '?')})",
        ],
        ["budget (epochs per trial)", _short(attrs.get("epochs", unknown))],
        ["budget", _short(attrs.get("budget", unknown))],
        ["hardware (latest run)", _short(attrs.get("hardware", unknown))],
        ["runs", _short(_runs(attrs.get("runs")) or unknown)],
        ["written by hpsearch", _short(attrs.get("hpsearch_version", unknown))],
        ["packages (latest run)", _short(_joined(attrs.get("versions")) or unknown)],
        ["report made with", _joined(package_versions())],
        ["report machine", f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})"],
    ]
    return HtmlTable("Provenance", ["", ""], rows, wrap=True)


# -- the page ----------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f5f7; } td:first-child, th:first-child { text-align: left; }
table.wrap td { white-space: normal; text-align: left; overflow-wrap: anywhere; }
table.wrap td:first-child { white-space: nowrap; overflow-wrap: normal; }
.scroll { overflow-x: auto; } .caption, .missing { color: #666; font-size: .9em; }
.notice { background: #fff4e5; border: 1px solid #f0b36b; padding: .6em 1em; }
"""


def summary_lines(view: StudyView) -> list[str]:
    """The counts and, when there is none, the plain statement that no trial is complete."""
    counts = Counter(t.state.name for t in view.trials)
    line = ", ".join(f"{s} {counts.get(s, 0)}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))
    lines = [f"{len(view.trials)} trials: {line}."]
    if not view.front:
        lines.append(
            "No trial is complete yet: there is no Pareto front, and the history, importances "
            "and parallel coordinates wait for complete trials."
        )
    if counts.get("RUNNING"):
        lines.append(
            f"{counts['RUNNING']} trial(s) are RUNNING: the study is being searched, or a run was "
            "killed (the next run marks them FAIL, interrupted)."
        )
    return lines


def summary_markdown(view: StudyView, report_path: Path | None = None) -> str:
    """The study's summary as Markdown, for optuna-dashboard's note on the study."""
    lines = ["## hpsearch summary", "", *summary_lines(view), ""]
    table = pareto_set_table(view)
    if table.rows:
        lines += [f"### {table.title}", ""]
        lines.append("| " + " | ".join(table.header) + " |")
        lines.append("|" + "---|" * len(table.header))
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines.append("")
    prov = {row[0]: row[1] for row in provenance_table(view).rows}
    lines += [
        f"data: {prov['data files']}, split {prov['split sizes']}; seed {prov['seed']}; "
        f"searcher {prov['searcher']}",
    ]
    if report_path is not None:
        lines += ["", f"Full report: `{report_path}`"]
    lines += ["", f"_updated {datetime.now().isoformat(timespec='seconds')} by hpsearch_"]
    return "\n".join(lines)


def _figure_html(name: str, figure: Any) -> str:
    return str(
        figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"fig-{name}",
            config={"responsive": True, "displaylogo": False},
        )
    )


_SECTIONS = {
    "pareto": "Front in the objectives' plane",
    "history": "Search history",
    "curves": "Learning curves",
    "importance": "Parameter importances",
    "parallel": "Parallel coordinates",
}


def page_html(view: StudyView, drawn: _Figures, tables: Iterable[HtmlTable]) -> str:
    """The whole page: plotly.js once in the head, then summary, figures, tables, provenance."""
    from plotly.offline import get_plotlyjs

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>hpsearch report: {html.escape(view.name)}</title>",
        f"<style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>hpsearch report: {html.escape(view.name)}</h1>",
    ]
    lines = summary_lines(view)
    parts.append(f"<p>{html.escape(lines[0])}</p>")
    parts += [f"<p class='notice'>{html.escape(line)}</p>" for line in lines[1:]]
    for name in FIGURES:
        parts.append(f"<h2>{_SECTIONS[name]}</h2>")
        if name in drawn.drawn:
            parts.append(_figure_html(name, drawn.drawn[name]))
        else:
            parts.append(f"<p class='missing'>{html.escape(drawn.missing.get(name, ''))}</p>")
    parts.append("<h2>Tables</h2>")
    parts += [table.html() for table in tables]
    parts.append(
        f"<p class='caption'>written {datetime.now().isoformat(timespec='seconds')} by hpsearch "
        f"{__version__}</p></body></html>"
    )
    return "\n".join(parts)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        html: The page.
        images: The PNG and PDF files of the figures.
        image_error: Why no images were written (kaleido or its browser missing), or None.
        tables: The tables as shown on the page (for the terminal and for tests).
        figures: The figures drawn, by name.
    """

    html: Path
    images: list[Path]
    image_error: str | None
    tables: list[HtmlTable]
    figures: dict[str, Any]


def _browser() -> str | None:
    """A Chromium for kaleido: ``BROWSER_PATH`` if set, else one on PATH."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


def write_images(figs: Mapping[str, Any], folder: Path) -> tuple[list[Path], str | None]:
    """Each figure as PNG and PDF through kaleido, in one browser session.

    Returns:
        The files written, and None; or no files and why (kaleido missing, no browser, or the
        browser failed), so the caller can say it and keep the HTML page.
    """
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError:
        return [], "kaleido is not installed (pip install 'kaleido>=1.0'): no PNG/PDF written"
    browser = _browser()
    if browser is None:
        return [], "kaleido needs Chrome or Chromium and none was found (set BROWSER_PATH)"
    os.environ.setdefault("BROWSER_PATH", browser)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for name in figs for ext in ("png", "pdf")]
    objects = [figs[name] for name in figs for _ in ("png", "pdf")]
    try:
        pio.write_images(objects, [str(p) for p in paths], width=1200, height=None, scale=1)
    except Exception as exc:  # kaleido reports browser trouble with many exception types
        return [], f"kaleido could not export images: {type(exc).__name__}: {exc}"
    return paths, None


def write_report(
    study: optuna.Study | StudyView, folder: Path, *, images: bool = True
) -> ReportFiles:
    """Write ``folder/report.html`` and, with ``images``, ``folder/figures/NAME.{png,pdf}``.

    Works on any stored study: interrupted (RUNNING or FAIL trials), without a complete trial
    (the page says so), of one, two or more objectives.
    """
    view = study if isinstance(study, StudyView) else StudyView.read(study)
    drawn = figures(view)
    tables = [pareto_set_table(view)]
    if (families := family_html_table(view)) is not None:
        tables.append(families)
    tables += [counts_table(view), provenance_table(view)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.html"
    path.write_text(page_html(view, drawn, tables), encoding="utf-8")
    written: list[Path] = []
    error = None
    if images:
        written, error = write_images(drawn.drawn, folder / "figures")
    return ReportFiles(path, written, error, tables, drawn.drawn)
