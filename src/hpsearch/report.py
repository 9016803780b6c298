"""Results: the Pareto table in the terminal and the Pareto plot as a plotly HTML page.

Both read the stored study with plain Optuna, so they show exactly what storage holds. The
front is Optuna's own (``study.best_trials``: non-dominated COMPLETE trials). Trials the
scheduler stopped early are drawn apart, at their partial values, and never enter the front:
half-trained values are not comparable to finished ones. Test metrics are shown, never used to
choose.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

#: Metric drawn on the x axis of the Pareto plot: the cost side of the trade-off.
COST_METRIC = "train_seconds"


def _metric(trial: FrozenTrial, study: optuna.Study, name: str) -> float | None:
    """A metric of a trial, from its values when it is an objective, else its attributes."""
    objectives = study.user_attrs.get("objectives", [])
    if trial.values is not None and name in objectives:
        return float(trial.values[objectives.index(name)])
    value = trial.user_attrs.get(name)
    return float(value) if isinstance(value, int | float) else None


def state_counts(study: optuna.Study) -> Counter[str]:
    """How many trials ended in each state."""
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated COMPLETE trials, best first by the first objective."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    front = study.best_trials
    first = study.directions[0]
    reverse = first == optuna.study.StudyDirection.MAXIMIZE
    return sorted(front, key=lambda t: t.values[0], reverse=reverse)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def pareto_table(study: optuna.Study) -> Table:
    """The Pareto-optimal trials as a rich table."""
    objectives: list[str] = study.user_attrs.get("objectives", [])
    primary = objectives[0] if objectives else "value"
    table = Table(title=f"Pareto-optimal trials of {study.study_name!r}")
    table.add_column("trial", justify="right")
    table.add_column(primary, justify="right")
    table.add_column(COST_METRIC, justify="right")
    table.add_column("test_accuracy", justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("epochs", justify="right")
    for trial in pareto_trials(study):
        n_params = trial.user_attrs.get("n_params")
        table.add_row(
            str(trial.number),
            _fmt(_metric(trial, study, primary), ".4f"),
            _fmt(_metric(trial, study, COST_METRIC), ".1f"),
            _fmt(_metric(trial, study, "test_accuracy"), ".4f"),
            f"{n_params:,}" if isinstance(n_params, int) else "-",
            str(trial.user_attrs.get("epochs_reached", "-")),
        )
    return table


def _hover(trial: FrozenTrial, study: optuna.Study, primary: str) -> str:
    lines = [
        f"trial {trial.number} ({trial.state.name})",
        f"{primary}: {_fmt(_metric(trial, study, primary), '.4f')}",
        f"{COST_METRIC}: {_fmt(_metric(trial, study, COST_METRIC), '.1f')}",
        f"test_accuracy: {_fmt(_metric(trial, study, 'test_accuracy'), '.4f')}",
        f"epochs: {trial.user_attrs.get('epochs_reached', '-')}",
    ]
    lines += [
        f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in trial.params.items()
    ]
    return "<br>".join(lines)


def pareto_figure(study: optuna.Study) -> Any:
    """A plotly figure: complete trials, the Pareto front, and early-stopped trials apart."""
    import plotly.graph_objects as go

    objectives: list[str] = study.user_attrs.get("objectives", [])
    primary = objectives[0] if objectives else "value"
    front = {t.number for t in pareto_trials(study)}
    groups: dict[str, list[FrozenTrial]] = {"complete": [], "front": [], "pruned": []}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            groups["front" if trial.number in front else "complete"].append(trial)
        elif trial.state == TrialState.PRUNED:
            groups["pruned"].append(trial)
    groups["front"].sort(key=lambda t: _metric(t, study, COST_METRIC) or 0.0)
    styles = {
        "complete": ("complete (dominated)", "markers", {"color": "#9aa5b1", "size": 9}),
        "front": ("Pareto front", "lines+markers", {"color": "#d62728", "size": 12}),
        "pruned": (
            "stopped early by the scheduler (partial values, not on the front)",
            "markers",
            {"color": "#1f77b4", "size": 8, "symbol": "x", "opacity": 0.6},
        ),
    }
    figure = go.Figure()
    for key, (label, mode, marker) in styles.items():
        trials = groups[key]
        figure.add_trace(
            go.Scatter(
                x=[_metric(t, study, COST_METRIC) for t in trials],
                y=[_metric(t, study, primary) for t in trials],
                mode=mode,
                # The front as an attainment staircase: what is reachable for a given cost.
                line={"shape": "hv"} if key == "front" else None,
                name=f"{label} [{len(trials)}]",
                marker=marker,
                text=[_hover(t, study, primary) for t in trials],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_layout(
        title=f"{study.study_name}: {primary} vs {COST_METRIC}",
        xaxis_title=f"{COST_METRIC} (training only, s)",
        yaxis_title=primary,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def write_pareto_html(study: optuna.Study, path: Path) -> Path:
    """Write the Pareto plot as a self-contained HTML page (works offline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pareto_figure(study).write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def print_report(study: optuna.Study, console: Console, html: Path | None) -> None:
    """Print state counts and the Pareto table; write the plot when ``html`` is given."""
    counts = state_counts(study)
    console.print(
        "Trials: "
        + ", ".join(
            f"{state} {counts.get(state, 0)}" for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
        )
    )
    if counts.get("COMPLETE", 0):
        console.print(pareto_table(study))
    else:
        console.print("[yellow]No trial completed its full budget yet: no Pareto front.[/]")
    if html is not None:
        write_pareto_html(study, html)
        console.print(f"Pareto plot: {html.resolve()}")
