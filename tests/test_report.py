"""The report draws and tabulates a study in its own objectives, from what storage holds.

Studies are built with plain Optuna, as the Recorder stores them: objectives' names in
``user_attrs["objectives"]``, values on COMPLETE trials only, every metric (partial ones of
PRUNED trials included) in the trial's user attributes.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial
from rich.console import Console

from hpsearch.report import (
    FAMILY_PARAM,
    StudyView,
    _metric,
    families,
    family_table,
    pareto_figure,
    pareto_table,
    pareto_trials,
    print_report,
    write_pareto_html,
)
from hpsearch.results.storage import HISTORY_KEY

optuna.logging.set_verbosity(optuna.logging.WARNING)

_DIST = {"x": FloatDistribution(0.0, 10.0)}


def _study(objectives: list[str], directions: list[str], storage: Any = None) -> optuna.Study:
    study = optuna.create_study(directions=directions, storage=storage)
    study.set_user_attr("objectives", objectives)
    return study


def _complete(study: optuna.Study, values: list[float], **attrs: Any) -> None:
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=values,
            params={"x": 1.0},
            distributions=_DIST,
            user_attrs={"epochs_reached": 4, "n_params": 1000, **attrs},
        )
    )


def _pruned(study: optuna.Study, **attrs: Any) -> None:
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"x": 2.0},
            distributions=_DIST,
            user_attrs={"epochs_reached": 1, "stop_reason": "scheduler", **attrs},
            intermediate_values={1: 0.5},
        )
    )


def _failed(study: optuna.Study, **attrs: Any) -> None:
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"x": 3.0},
            distributions=_DIST,
            user_attrs={"error": "boom", **attrs},
        )
    )


def _trace(figure: Any, prefix: str) -> Any:
    (trace,) = [t for t in figure.data if t.name.startswith(prefix)]
    return trace


def _points(trace: Any) -> list[tuple[float, float]]:
    return list(zip(trace.x, trace.y, strict=True))


def _two_objective_study() -> optuna.Study:
    """val_accuracy (max) against val_loss (min); every trial also has a train_seconds."""
    study = _study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    _complete(study, [0.90, 0.30], train_seconds=11.0, test_accuracy=0.88)  # 0: front
    _complete(study, [0.80, 0.20], train_seconds=12.0, test_accuracy=0.79)  # 1: front
    _complete(study, [0.70, 0.40], train_seconds=13.0, test_accuracy=0.69)  # 2: dominated
    _complete(study, [0.95, 0.50], train_seconds=14.0)  # 3: front, no test metric
    _pruned(study, val_accuracy=0.60, val_loss=0.70, train_seconds=1.0)  # 4
    _failed(study, val_accuracy=0.99, val_loss=0.01, train_seconds=0.1)  # 5: never drawn
    return study


# -- the plane of two objectives ---------------------------------------------------------------


def test_two_objectives_are_drawn_in_their_own_plane() -> None:
    study = _two_objective_study()
    figure = pareto_figure(study)

    front = _trace(figure, "Pareto front")
    # x is val_loss (minimized): the front runs from the best x, ascending.
    assert _points(front) == [(0.20, 0.80), (0.30, 0.90), (0.50, 0.95)]
    assert front.line.shape == "hv"
    assert _points(_trace(figure, "complete (dominated)")) == [(0.40, 0.70)]
    # The pruned trial sits at its partial values from user_attrs.
    assert _points(_trace(figure, "stopped early")) == [(0.70, 0.60)]
    assert sum(len(t.x) for t in figure.data) == 5  # the FAIL trial is not drawn
    assert [t.name.rsplit("[", 1)[1] for t in figure.data] == ["1]", "3]", "1]"]

    assert figure.layout.xaxis.title.text == "val_loss"
    assert figure.layout.yaxis.title.text == "val_accuracy"
    assert "train_seconds" not in figure.to_json()


def test_the_front_is_optunas() -> None:
    study = _two_objective_study()
    assert [t.number for t in pareto_trials(study)] == [3, 0, 1]  # best val_accuracy first
    assert {t.number for t in pareto_trials(study)} == {t.number for t in study.best_trials}


def _staircase_at(xs: list[float], ys: list[float], x: float) -> float:
    """The y of a plotly ``hv`` line at ``x``: each point's y, held until the next point's x."""
    for (x0, y0), x1 in zip(zip(xs, ys, strict=True), xs[1:], strict=False):
        if min(x0, x1) < x < max(x0, x1):
            return y0
    raise AssertionError(f"{x} is not between two points of the line")


@pytest.mark.parametrize("y_direction", ["maximize", "minimize"])
@pytest.mark.parametrize("x_direction", ["maximize", "minimize"])
def test_the_staircase_shows_the_best_y_attainable_at_each_x(
    y_direction: str, x_direction: str
) -> None:
    study = _study(["y_metric", "x_metric"], [y_direction, x_direction])
    rng = np.random.default_rng(7)
    for y, x in rng.uniform(0.0, 1.0, size=(40, 2)):
        _complete(study, [float(y), float(x)])
    front = _trace(pareto_figure(study), "Pareto front")
    xs, ys = list(front.x), list(front.y)
    assert len(xs) >= 3
    assert front.line.shape == "hv"
    assert {(t.values[1], t.values[0]) for t in study.best_trials} == set(zip(xs, ys, strict=True))

    x_better = (lambda a, b: a <= b) if x_direction == "minimize" else (lambda a, b: a >= b)
    best_y = min if y_direction == "minimize" else max
    for x0, x1 in zip(sorted(xs), sorted(xs)[1:], strict=False):
        x = (x0 + x1) / 2
        attainable = best_y(y for px, y in zip(xs, ys, strict=True) if x_better(px, x))
        assert _staircase_at(xs, ys, x) == attainable


# -- one objective -----------------------------------------------------------------------------


def _single_objective_study() -> optuna.Study:
    """val_loss (min) with a scheduler on val_accuracy, as a Recorder would store it."""
    study = _study(["val_loss"], ["minimize"])
    _complete(study, [0.5])  # 0
    _complete(study, [0.3])  # 1: best
    # 2: stopped by the scheduler. Optuna gives a single-objective PRUNED trial its last
    # intermediate value, the scheduler's val_accuracy, as its value.
    trial = study.ask()
    trial.report(0.77, step=2)
    trial.set_user_attr("val_loss", 0.9)
    trial.set_user_attr("val_accuracy", 0.77)
    study.tell(trial, state=TrialState.PRUNED)
    _complete(study, [0.4])  # 3
    _failed(study)  # 4
    _complete(study, [0.3])  # 5: ties the best
    return study


def test_single_objective_draws_values_per_trial_and_the_best_so_far() -> None:
    study = _single_objective_study()
    assert study.trials[2].values == [0.77]  # the trap the report must not fall into
    figure = pareto_figure(study)

    assert _points(_trace(figure, "best [")) == [(1, 0.3), (5, 0.3)]
    assert _points(_trace(figure, "complete (dominated)")) == [(0, 0.5), (3, 0.4)]
    assert _points(_trace(figure, "stopped early")) == [(2, 0.9)]  # val_loss, not 0.77
    best_so_far = _trace(figure, "best so far")
    assert _points(best_so_far) == [(0, 0.5), (1, 0.3), (3, 0.3), (5, 0.3)]
    assert best_so_far.line.shape == "hv"
    assert figure.layout.xaxis.title.text == "trial"
    assert figure.layout.yaxis.title.text == "val_loss"
    assert "train_seconds" not in figure.to_json()


def test_a_pruned_trials_values_never_stand_for_an_objective() -> None:
    pruned: FrozenTrial = create_trial(
        state=TrialState.PRUNED, value=0.77, user_attrs={"val_loss": 0.9}
    )
    assert _metric(pruned, ["val_loss"], "val_loss") == 0.9
    bare: FrozenTrial = create_trial(state=TrialState.PRUNED, value=0.77)
    assert _metric(bare, ["val_loss"], "val_loss") is None
    complete: FrozenTrial = create_trial(value=0.4, user_attrs={"val_loss": 0.9})
    assert _metric(complete, ["val_loss"], "val_loss") == 0.4
    assert _metric(complete, ["val_loss"], "other") is None


def test_single_objective_table_lists_the_best_trials_only() -> None:
    table = pareto_table(_single_objective_study())
    assert [c.header for c in table.columns] == ["trial", "val_loss", "parameters", "epochs"]
    assert list(table.columns[0].cells) == ["1", "5"]
    assert list(table.columns[1].cells) == ["0.3000", "0.3000"]


# -- three objectives --------------------------------------------------------------------------


def test_three_objectives_draw_a_scatter_matrix() -> None:
    study = _study(
        ["val_accuracy", "val_loss", "train_seconds"], ["maximize", "minimize", "minimize"]
    )
    _complete(study, [0.9, 0.3, 10.0])  # 0: front
    _complete(study, [0.8, 0.2, 20.0])  # 1: front
    _complete(study, [0.7, 0.4, 30.0])  # 2: dominated by 0
    _complete(study, [0.6, 0.5, 5.0])  # 3: front (cheapest)
    _pruned(study, val_accuracy=0.5, val_loss=0.6, train_seconds=2.0)  # 4
    _pruned(study, val_accuracy=0.5)  # 5: no partial value of every objective
    figure = pareto_figure(study)

    def columns(trace: Any) -> list[tuple[float, ...]]:
        assert trace.type == "splom"
        assert [d.label for d in trace.dimensions] == [
            "val_accuracy",
            "val_loss",
            "train_seconds (s)",
        ]
        return list(zip(*(d.values for d in trace.dimensions), strict=True))

    assert columns(_trace(figure, "Pareto front")) == [
        (0.9, 0.3, 10.0),
        (0.8, 0.2, 20.0),
        (0.6, 0.5, 5.0),
    ]
    assert columns(_trace(figure, "complete (dominated)")) == [(0.7, 0.4, 30.0)]
    pruned = _trace(figure, "stopped early")
    assert columns(pruned) == [(0.5, 0.6, 2.0)]
    assert "[1], 1 more without partial values" in pruned.name


# -- the table ---------------------------------------------------------------------------------


def test_table_columns_are_the_objectives_and_their_test_counterparts() -> None:
    table = pareto_table(_two_objective_study())
    headers = [c.header for c in table.columns]
    # test_loss exists on no trial: no column. train_seconds is no objective: no column.
    assert headers == ["trial", "val_accuracy", "val_loss", "test_accuracy", "parameters", "epochs"]
    cells = {h: list(c.cells) for h, c in zip(headers, table.columns, strict=True)}
    assert cells["trial"] == ["3", "0", "1"]
    assert cells["val_loss"] == ["0.5000", "0.3000", "0.2000"]
    assert cells["test_accuracy"] == ["-", "0.8800", "0.7900"]
    assert cells["parameters"] == ["1,000"] * 3


def test_table_shows_no_test_column_without_a_front_trial_having_it() -> None:
    study = _study(["val_loss", "train_seconds"], ["minimize", "minimize"])
    _complete(study, [0.2, 9.0], test_accuracy=0.8)  # a test metric, not val_loss's
    _complete(study, [0.3, 15.0], test_loss=0.25)  # dominated: its test_loss is not shown
    headers = [c.header for c in pareto_table(study).columns]
    assert headers == ["trial", "val_loss", "train_seconds", "parameters", "epochs"]
    assert list(pareto_table(study).columns[2].cells) == ["9.0"]


# -- the HTML page -----------------------------------------------------------------------------


def _decode(array: Any) -> list[float]:
    """A plotted array as JSON holds it: a list, or plotly's typed array of base64 bytes."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def plotted_traces(html: str) -> list[dict[str, Any]]:
    """The data argument of the page's ``Plotly.newPlot(id, data, layout, ...)`` call."""
    decoder = json.JSONDecoder()
    position = html.rindex("Plotly.newPlot(") + len("Plotly.newPlot(")
    skip = re.compile(r"\s*,?\s*")
    _, position = decoder.raw_decode(html, skip.match(html, position).end())  # type: ignore[union-attr]
    data, _ = decoder.raw_decode(html, skip.match(html, position).end())  # type: ignore[union-attr]
    assert isinstance(data, list)
    return data


def test_html_page_holds_the_plotted_points(tmp_path: Path) -> None:
    path = write_pareto_html(_two_objective_study(), tmp_path / "out" / "pareto.html")
    traces = {t["name"].split(" [")[0]: t for t in plotted_traces(path.read_text())}
    points = {
        name: list(zip(_decode(t["x"]), _decode(t["y"]), strict=True)) for name, t in traces.items()
    }
    assert points == {
        "complete (dominated)": [(0.40, 0.70)],
        "Pareto front": [(0.20, 0.80), (0.30, 0.90), (0.50, 0.95)],
        "stopped early by the scheduler (partial values, not on the front)": [(0.70, 0.60)],
    }


# -- reading storage ---------------------------------------------------------------------------


class CountingStorage(optuna.storages.InMemoryStorage):
    """An in-memory storage that counts the reads a report makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {"user_attrs": 0, "trials": 0}

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        self.reads["user_attrs"] += 1
        return super().get_study_user_attrs(study_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Any = None,
    ) -> list[FrozenTrial]:
        self.reads["trials"] += 1
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)


def test_report_reads_the_study_once(tmp_path: Path) -> None:
    storage = CountingStorage()
    study = _study(["val_accuracy", "val_loss"], ["maximize", "minimize"], storage=storage)
    rng = np.random.default_rng(3)
    for number in range(200):
        accuracy, loss = (float(v) for v in rng.uniform(0.0, 1.0, size=2))
        if number % 4 == 3:
            _pruned(study, val_accuracy=accuracy, val_loss=loss)
        else:
            _complete(study, [accuracy, loss], test_accuracy=accuracy)
    storage.reads = {"user_attrs": 0, "trials": 0}
    out = io.StringIO()

    print_report(study, Console(file=out, width=200), tmp_path / "pareto.html")

    assert storage.reads["user_attrs"] <= 2, storage.reads
    assert storage.reads["trials"] <= 2, storage.reads
    assert "COMPLETE 150, PRUNED 50" in out.getvalue()


def test_a_view_is_read_once_and_reused() -> None:
    storage = CountingStorage()
    study = _study(["val_accuracy", "val_loss"], ["maximize", "minimize"], storage=storage)
    _complete(study, [0.9, 0.3])
    view = StudyView.read(study)
    storage.reads = {"user_attrs": 0, "trials": 0}
    pareto_figure(view)
    pareto_table(view)
    assert storage.reads == {"user_attrs": 0, "trials": 0}
    assert view.directions == (StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE)


# -- model families (seed 000's comparison) ----------------------------------------------------

_FAMILIES = ["resnet", "lstm", "lstm_fcn", "cnn"]


def _family_trial(
    study: optuna.Study,
    family: str,
    state: TrialState,
    metrics: dict[str, float],
    **attrs: Any,
) -> None:
    """A trial of a families space as the Recorder stores it: the choice, then its parameters.

    Every metric goes to the user attributes; a COMPLETE trial also gets the objectives (from
    ``metrics`` or ``attrs``) as its values, in the study's order.
    """
    objectives = study.user_attrs["objectives"]
    own = f"{FAMILY_PARAM}.{family}.units"
    study.add_trial(
        create_trial(
            state=state,
            values=[{**metrics, **attrs}[o] for o in objectives]
            if state == TrialState.COMPLETE
            else None,
            params={FAMILY_PARAM: family, own: 16},
            distributions={
                FAMILY_PARAM: CategoricalDistribution(_FAMILIES),
                own: IntDistribution(8, 64),
            },
            user_attrs={**metrics, **attrs},
        )
    )


#: (family, state, val_accuracy, val_loss, other user attributes) of the families study.
_FAMILY_TRIALS: list[tuple[str, TrialState, float | None, float | None, dict[str, Any]]] = [
    # 0: dominated by 1; lstm's best by val_accuracy, not by val_loss
    ("lstm", TrialState.COMPLETE, 0.855, 0.37, {"test_loss": 0.366, "test_accuracy": 0.841,
     "train_seconds": 362.4, "n_params": 52_000, "epochs_reached": 50}),
    # 1: front; resnet's best either way
    ("resnet", TrialState.COMPLETE, 0.86, 0.31, {"test_loss": 0.302, "test_accuracy": 0.863,
     "train_seconds": 109.6, "n_params": 480_000, "epochs_reached": 50}),
    # 2: dominated by 1
    ("resnet", TrialState.COMPLETE, 0.85, 0.33, {"test_loss": 0.33, "test_accuracy": 0.851,
     "train_seconds": 120.0, "n_params": 250_000, "epochs_reached": 40}),
    # 3: front, best val_accuracy overall; no train_seconds stored
    ("lstm_fcn", TrialState.COMPLETE, 0.87, 0.35, {"test_loss": 0.312, "test_accuracy": 0.86,
     "n_params": 300_000, "epochs_reached": 50}),
    # 4: front, best val_loss overall; lstm's best by val_loss
    ("lstm", TrialState.COMPLETE, 0.85, 0.30, {"test_loss": 0.299, "test_accuracy": 0.845,
     "train_seconds": 400.0, "n_params": 64_000, "epochs_reached": 30}),
    ("lstm", TrialState.PRUNED, 0.60, 0.70, {"epochs_reached": 2}),  # 5
    ("resnet", TrialState.PRUNED, 0.65, 0.60, {"epochs_reached": 3}),  # 6
    ("cnn", TrialState.PRUNED, 0.55, 0.80, {"epochs_reached": 1}),  # 7
    ("cnn", TrialState.PRUNED, None, None, {"epochs_reached": 0}),  # 8: no partial values
    ("lstm", TrialState.FAIL, None, None, {"error": "OOM"}),  # 9: never drawn nor counted
]  # fmt: skip


def _families_study(
    objectives: list[str], directions: list[str], extra: dict[int, dict[str, Any]] | None = None
) -> optuna.Study:
    """The study of ``_FAMILY_TRIALS``, with ``extra`` user attributes by trial number."""
    study = _study(objectives, directions)
    for number, (family, state, accuracy, loss, attrs) in enumerate(_FAMILY_TRIALS):
        metrics = {
            k: v for k, v in (("val_accuracy", accuracy), ("val_loss", loss)) if v is not None
        }
        _family_trial(study, family, state, metrics, **attrs, **(extra or {}).get(number, {}))
    return study


def _cells(table: Any) -> dict[str, list[str]]:
    return {str(c.header): [str(cell) for cell in c.cells] for c in table.columns}


def _rows(table: Any) -> list[list[str]]:
    return [list(row) for row in zip(*_cells(table).values(), strict=True)]


_FAMILY_HEADERS = [
    "family",
    "trials (complete/pruned)",
    "trial",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "train_seconds",
    "parameters",
    "epochs",
]
_CNN_ROW = ["cnn", "0/2", "no complete trial", "-", "-", "-", "-", "-", "-", "-"]


def test_family_table_takes_its_columns_from_the_studys_task() -> None:
    study = _families_study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    study.set_user_attr("table_metrics", ["val_loss", "val_explained_variance", "train_seconds"])
    table = family_table(study)
    assert table is not None
    headers = [str(c.header) for c in table.columns]
    assert headers[3:6] == ["val_loss", "val_explained_variance", "train_seconds"]
    # The first objective is not among the task's columns, so it follows them.
    assert headers[6] == "val_accuracy"


def test_families_group_complete_trials_by_the_choice() -> None:
    study = _families_study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    grouped = families(study)
    # The choice's order, COMPLETE trials only: cnn has none, the FAIL lstm trial is left out.
    assert list(grouped) == ["resnet", "lstm", "lstm_fcn"]
    assert {k: [t.number for t in v] for k, v in grouped.items()} == {
        "resnet": [1, 2],
        "lstm": [0, 4],
        "lstm_fcn": [3],
    }
    assert families(_two_objective_study()) == {}


def test_family_table_lists_each_familys_best_trial_by_the_first_objective() -> None:
    table = family_table(_families_study(["val_accuracy", "val_loss"], ["maximize", "minimize"]))
    assert table is not None
    assert [c.header for c in table.columns] == _FAMILY_HEADERS
    assert table.caption == "best by val_accuracy (max); test metrics shown, never used to choose"
    # Best family first; lstm's best by val_accuracy is trial 0, though trial 4 has less loss.
    assert _rows(table) == [
        ["lstm_fcn", "1/0", "3", "0.3500", "0.8700", "0.3120", "0.8600", "-", "300,000", "50"],
        ["resnet", "2/1", "1", "0.3100", "0.8600", "0.3020", "0.8630", "109.6", "480,000", "50"],
        ["lstm", "2/1", "0", "0.3700", "0.8550", "0.3660", "0.8410", "362.4", "52,000", "50"],
        _CNN_ROW,
    ]


def test_family_table_follows_a_minimized_first_objective() -> None:
    table = family_table(_families_study(["val_loss", "val_accuracy"], ["minimize", "maximize"]))
    assert table is not None
    assert [c.header for c in table.columns] == _FAMILY_HEADERS
    assert table.caption == "best by val_loss (min); test metrics shown, never used to choose"
    assert _rows(table) == [
        ["lstm", "2/1", "4", "0.3000", "0.8500", "0.2990", "0.8450", "400.0", "64,000", "30"],
        ["resnet", "2/1", "1", "0.3100", "0.8600", "0.3020", "0.8630", "109.6", "480,000", "50"],
        ["lstm_fcn", "1/0", "3", "0.3500", "0.8700", "0.3120", "0.8600", "-", "300,000", "50"],
        _CNN_ROW,
    ]


def test_a_family_never_sampled_is_listed_with_zero_counts() -> None:
    study = _study(["val_accuracy"], ["maximize"])
    _family_trial(study, "resnet", TrialState.COMPLETE, {"val_accuracy": 0.8})
    table = family_table(study)
    assert table is not None
    assert _cells(table)["family"] == ["resnet", "lstm", "lstm_fcn", "cnn"]
    assert _cells(table)["trials (complete/pruned)"] == ["1/0", "0/0", "0/0", "0/0"]
    assert _cells(table)["trial"] == [
        "0",
        "no complete trial",
        "no complete trial",
        "no complete trial",
    ]


def test_a_study_without_a_categorical_model_parameter_has_no_family_table() -> None:
    assert family_table(_two_objective_study()) is None
    numeric = _study(["val_loss"], ["minimize"])
    numeric.add_trial(
        create_trial(
            value=0.3, params={FAMILY_PARAM: 2.0}, distributions={FAMILY_PARAM: _DIST["x"]}
        )
    )
    assert family_table(numeric) is None
    assert families(numeric) == {}


def _family_colors(figure: Any) -> dict[str, str]:
    """Each family's colour, from its traces (which must agree), by legend group."""
    colors: dict[str, str] = {}
    for trace in figure.data:
        if trace.legendgroup:
            assert colors.setdefault(trace.legendgroup, trace.marker.color) == trace.marker.color
    return colors


def test_the_plane_is_coloured_by_family_and_keeps_one_front() -> None:
    study = _families_study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    figure = pareto_figure(study)

    def family_points(label: str) -> dict[str, list[tuple[float, float]]]:
        return {t.legendgroup: _points(t) for t in figure.data if t.legendgroup and label in t.name}

    assert family_points("complete (dominated)") == {
        "resnet": [(0.33, 0.85)],
        "lstm": [(0.37, 0.855)],
        "lstm_fcn": [],
        "cnn": [],
    }
    assert family_points("stopped early") == {
        "resnet": [(0.60, 0.65)],
        "lstm": [(0.70, 0.60)],
        "lstm_fcn": [],
        "cnn": [(0.80, 0.55)],
    }
    assert _trace(figure, "cnn: stopped early").name.endswith("[1], 1 more without partial values")
    assert _trace(figure, "resnet: complete (dominated)").name.endswith("[1]")
    for trace in figure.data:
        if trace.legendgroup and "stopped early" in trace.name:
            assert trace.marker.symbol == "x"

    # The front is the one it would be without families, drawn as one staircase.
    twin = _study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    for _, state, accuracy, loss, _ in _FAMILY_TRIALS:
        if state == TrialState.COMPLETE:
            assert accuracy is not None and loss is not None
            _complete(twin, [accuracy, loss])
    front = _trace(figure, "Pareto front")
    assert _points(front) == _points(_trace(pareto_figure(twin), "Pareto front"))
    assert _points(front) == [(0.30, 0.85), (0.31, 0.86), (0.35, 0.87)]
    assert front.line.shape == "hv"
    assert front.name == "Pareto front [3]"

    colors = _family_colors(figure)
    assert list(colors) == _FAMILIES
    assert len(set(colors.values())) == len(_FAMILIES)
    # Trials 4 (lstm), 1 (resnet), 3 (lstm_fcn), in the staircase's order.
    assert list(front.marker.color) == [colors["lstm"], colors["resnet"], colors["lstm_fcn"]]
    assert front.marker.line.color == "black"
    assert "model: lstm<br>" in front.text[0]
    assert sum(len(t.x) for t in figure.data) == 8  # the FAIL and the valueless PRUNED are not


@pytest.mark.parametrize(
    ("objectives", "directions"),
    [
        (["val_accuracy"], ["maximize"]),
        (["val_loss", "val_accuracy"], ["minimize", "maximize"]),
        (["val_accuracy", "val_loss", "train_seconds"], ["maximize", "minimize", "minimize"]),
    ],
)
def test_every_figure_colours_each_trial_by_its_family(
    objectives: list[str], directions: list[str]
) -> None:
    # train_seconds as a third objective: trial 3 stores none, give it one.
    study = _families_study(objectives, directions, extra={3: {"train_seconds": 250.0}})
    figure = pareto_figure(study)
    colors = _family_colors(figure)
    assert list(colors) == _FAMILIES

    front_name = "best [" if len(objectives) == 1 else "Pareto front ["
    drawn: list[int] = []
    for trace in figure.data:
        if trace.name == "best so far":
            continue
        numbers = [int(re.match(r"trial (\d+)", text).group(1)) for text in trace.text]  # type: ignore[union-attr]
        drawn += numbers
        family_of = [study.trials[n].params[FAMILY_PARAM] for n in numbers]
        if trace.name.startswith(front_name):
            assert not trace.legendgroup
            assert {t.number for t in pareto_trials(study)} == set(numbers)
            assert list(trace.marker.color) == [colors[f] for f in family_of]
        else:
            assert set(family_of) <= {trace.legendgroup}
    # Every drawable trial once: COMPLETE ones with every objective, PRUNED ones with partials.
    drawable = {
        t.number
        for t in study.trials
        if t.state != TrialState.FAIL and StudyView.read(study).point(t)
    }
    assert sorted(drawn) == sorted(drawable)


def _table_lines(text: str, first_cells: set[str]) -> list[list[str]]:
    """The rows of rendered rich tables whose first cell is one of ``first_cells``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if line.lstrip().startswith("│") and cells[0] in first_cells:
            rows.append(cells)
    return rows


def test_report_prints_the_family_table_after_the_front(tmp_path: Path) -> None:
    study = _families_study(["val_accuracy", "val_loss"], ["maximize", "minimize"])
    out = io.StringIO()
    print_report(study, Console(file=out, width=250), tmp_path / "pareto.html")
    text = out.getvalue()

    assert text.index("Pareto-optimal trials") < text.index("Best trial per model family")
    assert "best by val_accuracy (max); test metrics shown, never used to choose" in text
    assert _table_lines(text, set(_FAMILIES)) == [
        ["lstm_fcn", "1/0", "3", "0.3500", "0.8700", "0.3120", "0.8600", "-", "300,000", "50"],
        ["resnet", "2/1", "1", "0.3100", "0.8600", "0.3020", "0.8630", "109.6", "480,000", "50"],
        ["lstm", "2/1", "0", "0.3700", "0.8550", "0.3660", "0.8410", "362.4", "52,000", "50"],
        _CNN_ROW,
    ]
    traces = {t["name"] for t in plotted_traces((tmp_path / "pareto.html").read_text())}
    assert "lstm: complete (dominated) [1]" in traces


def test_report_of_a_study_without_families_prints_no_family_table() -> None:
    out = io.StringIO()
    print_report(_two_objective_study(), Console(file=out, width=250), None)
    assert "Pareto-optimal trials" in out.getvalue()
    assert "model family" not in out.getvalue()


# -- the HTML report (hpsearch report) ---------------------------------------------------------

_N_VAL = 400
_REPORT_DIST = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "width": IntDistribution(8, 64)}


def _history(accuracies: list[float]) -> list[dict[str, Any]]:
    return [{"epoch": e, "val_accuracy": a, "loss": 1 - a} for e, a in enumerate(accuracies, 1)]


def _report_trial(
    study: optuna.Study,
    state: TrialState,
    curve: list[float],
    seconds: float | None,
    reason: str,
    lr: float,
) -> None:
    attrs: dict[str, Any] = {"stop_reason": reason, "epochs_reached": len(curve)}
    system_attrs = {HISTORY_KEY: _history(curve)} if curve else {}
    if curve:
        attrs["val_accuracy"] = curve[-1]
    if seconds is not None:
        attrs["train_seconds"] = seconds
    complete = state == TrialState.COMPLETE
    study.add_trial(
        create_trial(
            state=state,
            values=[curve[-1], seconds] if complete else None,
            params={"lr": lr, "width": 16},
            distributions=_REPORT_DIST,
            user_attrs={**attrs, "test_accuracy": curve[-1] - 0.01} if complete else attrs,
            system_attrs=system_attrs,
            intermediate_values=dict(enumerate(curve, 1)),
        )
    )


def _report_study() -> optuna.Study:
    """Complete, pruned, failed and interrupted trials, with the provenance hpsearch stores."""
    study = _study(["val_accuracy", "train_seconds"], ["maximize", "minimize"])
    study.set_user_attr("progress_metric", "val_accuracy")
    study.set_user_attr(
        "data",
        {
            "files": ["data/xgamma.h5"],
            "split_sizes": {"train": 1866, "val": _N_VAL, "test": 400},
            "class_names": ["gamma", "proton"],
            "file_attrs": {"generator": "hpsearch.simulate.xgamma", "seed": 11},
        },
    )
    study.set_user_attr("seed", 20201)
    study.set_user_attr("searcher", "tpe")
    study.set_user_attr("hardware", "1 node: gpu01 16 CPUs, 1 GPU (H100), 64 GiB for Ray")
    study.set_user_attr("versions", {"ray": "2.60.0", "tensorflow": "2.21.0"})
    study.set_user_attr(
        "runs", [{"started": "2026-11-23T10:00:00", "ray_address": "local", "nodes": [{}]}]
    )
    study.set_user_attr("baseline", {"metric": "test_accuracy", "value": 0.763, "name": "cut"})
    complete = TrialState.COMPLETE
    _report_trial(study, complete, [0.7, 0.8, 0.85, 0.90], 20.0, "complete", 0.01)  # 0 front
    _report_trial(study, complete, [0.7, 0.75, 0.8, 0.80], 10.0, "complete", 0.001)  # 1 front
    _report_trial(study, complete, [0.6, 0.7, 0.7, 0.75], 30.0, "complete", 0.05)  # 2 dominated
    _report_trial(study, complete, [0.6, 0.7, 0.8, 0.82], 25.0, "complete", 0.02)  # 3 dominated
    _report_trial(study, TrialState.PRUNED, [0.55, 0.6], 5.0, "scheduler", 0.09)  # 4
    _report_trial(study, TrialState.FAIL, [], None, "error", 0.03)  # 5: no values
    _report_trial(study, TrialState.FAIL, [0.65, 0.72], 8.0, "interrupted", 0.004)  # 6
    return study


def page_figure(html: str, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The data and layout of the page's ``Plotly.newPlot("fig-NAME", data, layout)`` call."""
    decoder = json.JSONDecoder()
    match = re.search(rf'Plotly\.newPlot\(\s*"fig-{name}",', html)
    assert match is not None, name
    position = html.index("[", match.end())
    data, position = decoder.raw_decode(html, position)
    position = html.index("{", position)
    layout, _ = decoder.raw_decode(html, position)
    return data, layout


def _named(traces: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (trace,) = [t for t in traces if t.get("name", "").startswith(prefix)]
    return trace


def test_report_page_plots_the_front_with_error_bars_and_reference_lines(tmp_path: Path) -> None:
    from hpsearch.report_page import write_report

    files = write_report(_report_study(), tmp_path, images=False)
    page = files.html.read_text()
    data, layout = page_figure(page, "pareto")

    front = _named(data, "Pareto front")
    assert list(zip(_decode(front["x"]), _decode(front["y"]), strict=True)) == [
        (10.0, 0.80),
        (20.0, 0.90),
    ]
    errors = _decode(front["error_y"]["array"])
    assert errors == pytest.approx([(0.8 * 0.2 / _N_VAL) ** 0.5, (0.9 * 0.1 / _N_VAL) ** 0.5])
    dominated = _named(data, "complete (dominated)")
    assert sorted(zip(_decode(dominated["x"]), _decode(dominated["y"]), strict=True)) == [
        (25.0, 0.82),
        (30.0, 0.75),
    ]
    assert dominated["marker"]["color"] == "#b8bec6"  # greyed
    pruned = _named(data, "stopped early")
    assert list(zip(_decode(pruned["x"]), _decode(pruned["y"]), strict=True)) == [(5.0, 0.6)]
    failed = _named(data, "failed or cut short")
    assert failed["name"].endswith("[1], 1 more without values")
    assert list(zip(_decode(failed["x"]), _decode(failed["y"]), strict=True)) == [(8.0, 0.72)]
    assert "lr: 0.004" in failed["text"][0] and "stopped: interrupted" in failed["text"][0]
    lines = {shape["name"]: shape["y0"] for shape in layout["shapes"]}
    assert lines == {"cut: test accuracy 0.763": 0.763, "chance level 0.5": 0.5}
    assert layout["xaxis"]["title"]["text"] == "training time (s)"
    assert layout["yaxis"]["title"]["text"] == "validation accuracy"


def test_report_page_holds_plotlyjs_once_and_every_figure(tmp_path: Path) -> None:
    from plotly.offline import get_plotlyjs

    from hpsearch.report_page import write_report

    page = write_report(_report_study(), tmp_path, images=False).html.read_text()
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    rest = page.replace(bundle, "")
    assert "cdn.plot.ly" not in rest and "<script src=" not in rest  # nothing fetched online
    for name in ("pareto", "history", "curves", "importance", "parallel"):
        page_figure(page, name)


def test_report_page_history_curves_and_tables(tmp_path: Path) -> None:
    from hpsearch.report_page import write_report

    files = write_report(_report_study(), tmp_path, images=False)
    page = files.html.read_text()

    history, _ = page_figure(page, "history")
    best = [t for t in history if t.get("name") == "validation accuracy: best so far"]
    assert _decode(best[0]["x"]) == [0, 1, 2, 3]
    assert _decode(best[0]["y"]) == [0.9, 0.9, 0.9, 0.9]
    volume = next(t for t in history if t.get("name") == "hypervolume")
    # reference: worst accuracy 0.75, worst time 30 s; trial 0 alone: 0.15 * 10, then +0.05*10.
    assert _decode(volume["y"]) == pytest.approx([1.5, 2.0, 2.0, 2.0])

    curves, _ = page_figure(page, "curves")
    pruned_curve = _named(curves, "pruned [1]")
    assert _decode(pruned_curve["x"])[:2] == [1, 2]
    stops = _named(curves, "stopped: scheduler")
    assert list(zip(_decode(stops["x"]), _decode(stops["y"]), strict=True)) == [(2, 0.6)]
    cut = _named(curves, "stopped: interrupted")
    assert list(zip(_decode(cut["x"]), _decode(cut["y"]), strict=True)) == [(2, 0.72)]

    tables = {t.title.split(" (")[0]: t for t in files.tables}
    pareto = tables["Pareto-optimal trials"]
    assert pareto.header[:4] == [
        "trial",
        "validation accuracy",
        "training time (s)",
        "test accuracy",
    ]
    assert [row[:4] for row in pareto.rows] == [
        ["0", "0.9000", "20.0", "0.8900"],
        ["1", "0.8000", "10.0", "0.7900"],
    ]
    assert pareto.rows[0][-2:] == ["0.01", "16"]  # lr, width
    assert tables["Trials by state and stop reason"].rows == [
        ["COMPLETE", "complete", "4"],
        ["PRUNED", "scheduler", "1"],
        ["FAIL", "error", "1"],
        ["FAIL", "interrupted", "1"],
    ]
    provenance = dict(map(tuple, tables["Provenance"].rows))  # type: ignore[arg-type]
    assert provenance["split sizes"] == json.dumps({"train": 1866, "val": _N_VAL, "test": 400})
    assert provenance["seed"] == "20201"
    assert "Provenance</h3><div class='scroll'><table class=wrap>" in page  # long text wraps
    assert provenance["data file attributes"] == json.dumps(
        {"generator": "hpsearch.simulate.xgamma", "seed": 11}
    )
    assert (
        provenance["hardware (latest run)"] == "1 node: gpu01 16 CPUs, 1 GPU (H100), 64 GiB for Ray"
    )
    assert provenance["packages (latest run)"] == "ray 2.60.0, tensorflow 2.21.0"
    assert provenance["runs"] == "2026-11-23T10:00:00 on local Ray, 1 node(s)"


def test_report_page_of_a_study_without_a_complete_trial(tmp_path: Path) -> None:
    from hpsearch.report_page import write_report

    study = _study(["val_accuracy", "train_seconds"], ["maximize", "minimize"])
    _report_trial(study, TrialState.PRUNED, [0.55, 0.6], 5.0, "scheduler", 0.09)
    _report_trial(study, TrialState.FAIL, [0.65], 8.0, "interrupted", 0.004)
    files = write_report(study, tmp_path, images=False)
    page = files.html.read_text()
    assert "No trial is complete yet" in page
    assert set(files.figures) == {"pareto", "curves"}
    data, layout = page_figure(page, "pareto")
    assert _decode(_named(data, "Pareto front")["x"]) == []
    assert "shapes" not in layout  # no data split, no classes: neither error bars nor chance
    assert "no error bars on validation accuracy" in layout["title"]["text"]


def test_report_figures_as_png_and_pdf(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists() and "BROWSER_PATH" not in __import__("os").environ:
        pytest.skip("no Chromium for kaleido")
    from hpsearch.report_page import write_images

    study = _report_study()
    from hpsearch.report_page import front_figure

    files, error = write_images({"pareto": front_figure(StudyView.read(study))}, tmp_path)
    assert error is None
    assert [p.name for p in files] == ["pareto.png", "pareto.pdf"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files[1].read_bytes()[:5] == b"%PDF-"


def test_report_of_a_realistic_study_stays_small(tmp_path: Path) -> None:
    """200 trials with 20-epoch histories: the page is plotly.js (4.6 MB) plus ~0.5 MB."""
    from hpsearch.report_page import write_report

    study = _study(["val_accuracy", "train_seconds"], ["maximize", "minimize"])
    rng = np.random.default_rng(1)
    for number in range(200):
        epochs = 20 if number % 3 else 4
        curve = np.cumsum(rng.uniform(0.0, 0.02, size=epochs)) + 0.5
        state = TrialState.COMPLETE if epochs == 20 else TrialState.PRUNED
        _report_trial(
            study,
            state,
            curve.tolist(),
            float(rng.uniform(5, 60)),
            "x",
            float(rng.uniform(1e-4, 0.1)),
        )
    size = write_report(study, tmp_path, images=False).html.stat().st_size
    assert size < 6_000_000, size


def test_report_command_reads_a_study_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpsearch.cli import main

    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(
        study_name="named", storage=url, directions=["maximize", "minimize"]
    )
    study.set_user_attr("objectives", ["val_accuracy", "train_seconds"])
    _report_trial(study, TrialState.COMPLETE, [0.7, 0.8], 12.0, "complete", 0.01)
    out = tmp_path / "rep"
    assert main(["report", "named", "--storage", url, "--out", str(out), "--no-images"]) == 0
    data, _ = page_figure((out / "report.html").read_text(), "pareto")
    front = _named(data, "Pareto front")
    assert list(zip(_decode(front["x"]), _decode(front["y"]), strict=True)) == [(12.0, 0.8)]
    assert (out / "pareto.html").exists()
    assert "0.8000" in capsys.readouterr().out
    missing = tmp_path / "typo.db"
    assert main(["report", "named", "--storage", f"sqlite:///{missing}"]) == 2
    assert not missing.exists()
