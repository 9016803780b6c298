"""One conformance suite, run against every searcher on random valid spaces (hypothesis).

Whichever library proposes a trial, the Recorder must store the same thing: values in range,
on their step and among the declared choices (exactly: ``True`` is not ``1``), exactly the
names the trial's branches make active, the Optuna distribution of each name as the Optuna
converter declares it, and a ticket whose parameters are the decoded stored values.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import FrozenTrial

from hpsearch import lifecycle
from hpsearch.recorder import Recorder, TrialTicket
from hpsearch.searchers import ProposalSampler
from hpsearch.searchers._optuna import distribution
from hpsearch.spec import (
    CategoricalParam,
    IntParam,
    Param,
    SearchSpace,
    Study,
    StudySpec,
    load_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Names to build spaces from: identifiers, some that YAML would read as bools or null
#: unquoted. Never ``name`` (an option's reserved key), ``type`` or ``include``.
NAMES = ["a", "b", "c", "x", "lr", "units", "depth", "yes", "no", "on", "null", "true", "n2", "_p"]
#: Categorical choices: distinct under ``==`` within one list (the space refuses others).
CHOICES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.5, -2.25, 1e-3, 0.0, 1e6]),
    st.sampled_from(["a", "relu", "yes", "null", "1", "", "with space"]),
    st.booleans(),
    st.none(),
)
CONSTANTS = st.one_of(
    st.integers(-100, 100),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.sampled_from(["adam", "yes", "", "8"]),
    st.booleans(),
    st.none(),
)
#: Settings per searcher: hypothesis examples, trials asked per example, searcher settings.
SEARCHERS: dict[str, tuple[int, int, dict[str, Any]]] = {
    "optuna-tpe": (25, 8, {"n_startup_trials": 2}),
    "optuna-nsga2": (25, 8, {"population_size": 3}),
    "optuna-gp": (6, 5, {"n_startup_trials": 2}),
    "optuna-cmaes": (25, 8, {"n_startup_trials": 2}),
    "hyperopt-tpe": (25, 8, {"n_startup_trials": 2}),
    "random": (20, 6, {}),
    "grid": (25, 8, {"allow_partial": True}),
}
#: A longer hunt for bugs: HPSEARCH_CONFORMANCE_SCALE=20 runs 20 times the examples.
SCALE = int(os.environ.get("HPSEARCH_CONFORMANCE_SCALE", "1"))
METRICS = ["val_accuracy", "train_seconds"]
EPOCHS = 3
#: Largest grid the suite enumerates (grid search lists a whole subtree's points).
MAX_GRID = 300


@st.composite
def float_params(draw: st.DrawFn, *, finite: bool) -> dict[str, Any]:
    kinds = ["step", "degenerate"] if finite else ["uniform", "log", "step", "degenerate"]
    kind = draw(st.sampled_from(kinds))
    if kind == "uniform":
        low = draw(st.floats(-100, 100, allow_nan=False))
        return {"type": "float", "low": low, "high": low + draw(st.floats(1e-3, 100))}
    # Stepped ranges as a user writes them: short decimals (the space refuses a step that
    # divides the range only to within rounding).
    if kind == "log":
        low = draw(st.floats(1e-4, 10))
        return {"type": "float", "low": low, "high": low * draw(st.floats(1.001, 1e4)), "log": True}
    if kind == "step":
        step = draw(st.sampled_from([0.1, 0.25, 1.0, 2.5, 0.003]))
        low = round(draw(st.integers(-20, 20)) * draw(st.sampled_from([1.0, 0.1, 0.37])), 4)
        steps = draw(st.integers(0, 6 if finite else 12))
        high = round(low + steps * step, 6)
        return {"type": "float", "low": low, "high": high, "step": step}
    low = draw(st.floats(1e-3, 100)) if draw(st.booleans()) else draw(st.floats(-50, 50))
    extra: dict[str, Any] = draw(st.sampled_from([{}, {"log": True}, {"step": 0.5}]))
    if "log" in extra and low <= 0:
        extra = {}
    return {"type": "float", "low": low, "high": low, **extra}


@st.composite
def int_params(draw: st.DrawFn, *, finite: bool) -> dict[str, Any]:
    kind = draw(st.sampled_from(["uniform", "log", "degenerate"]))
    if kind == "log":
        low = draw(st.integers(1, 50))
        width = draw(st.integers(0, 8 if finite else 500))
        return {"type": "int", "low": low, "high": low + width, "log": True}
    low = draw(st.integers(-20, 20))
    step = draw(st.integers(1, 4))
    steps = 0 if kind == "degenerate" else draw(st.integers(1, 6 if finite else 15))
    param: dict[str, Any] = {"type": "int", "low": low, "high": low + steps * step}
    if step > 1 or draw(st.booleans()):
        param["step"] = step
    return param


def categorical_params() -> st.SearchStrategy[dict[str, Any]]:
    lists = st.lists(CHOICES, min_size=1, max_size=4, unique_by=lambda v: v)
    return lists.map(lambda choices: {"type": "categorical", "choices": choices})


@st.composite
def groups(
    draw: st.DrawFn,
    *,
    categorical: bool,
    finite: bool,
    depth: int,
    choice_depth: int,
    empty_ok: bool = False,
) -> dict[str, Any]:
    """A group's body: parameters, constants, nested groups and choices (up to 3 deep)."""
    most = 4 if depth == 0 else 3
    keys = draw(st.lists(st.sampled_from(NAMES), min_size=0 if empty_ok else 1, max_size=most))
    body: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        kinds = ["float", "int", "constant"]
        if categorical:
            kinds.append("categorical")
            if choice_depth < 3:
                kinds.append("choice")
        if depth < 2:
            kinds.append("group")
        kind = draw(st.sampled_from(kinds))
        if kind == "float":
            body[key] = draw(float_params(finite=finite))
        elif kind == "int":
            body[key] = draw(int_params(finite=finite))
        elif kind == "categorical":
            body[key] = draw(categorical_params())
        elif kind == "constant":
            body[key] = draw(CONSTANTS)
        elif kind == "group":
            body[key] = draw(
                groups(
                    categorical=categorical,
                    finite=finite,
                    depth=depth + 1,
                    choice_depth=choice_depth,
                )
            )
        else:
            options = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
            body[key] = {
                "type": "choice",
                "options": {
                    option: draw(
                        groups(
                            categorical=categorical,
                            finite=finite,
                            depth=depth + 1,
                            choice_depth=choice_depth + 1,
                            empty_ok=True,
                        )
                    )
                    for option in options
                },
            }
    return body


@st.composite
def space_files(draw: st.DrawFn, *, categorical: bool, finite: bool) -> str:
    """The YAML text of a valid space file with at least one searched parameter."""
    params = draw(groups(categorical=categorical, finite=finite, depth=0, choice_depth=0))
    if not any(_searched(params)):
        params["p0"] = draw(int_params(finite=finite))
    return yaml.safe_dump({"params": params}, sort_keys=False)


def _searched(body: dict[str, Any]) -> Iterator[bool]:
    for node in body.values():
        if isinstance(node, dict):
            yield "type" in node or any(_searched(node))


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _study(folder: Path, text: str, kind: str, directions: list[str], trials: int) -> Study:
    path = folder / "space.yaml"
    path.write_text(text)
    space = load_space(path)
    spec = StudySpec.model_validate(
        {
            "name": "conformance",
            "task": "conformance",
            "space": str(path),
            "seed": 7,
            "data": {"path": "unused.h5"},
            "objectives": [
                {"metric": metric, "direction": direction}
                for metric, direction in zip(METRICS, directions, strict=False)
            ],
            "searcher": {"type": kind, **SEARCHERS[kind][2]},
            "budget": {"trials": trials, "epochs": EPOCHS},
        }
    )
    return Study(folder / "study.yaml", spec, space)


def _strict(value: Any) -> str:
    """A form in which True, 1 and 1.0 differ, and numpy scalars fail."""
    return json.dumps(value, sort_keys=True)


def _check_value(name: str, param: Param, value: Any) -> None:
    if isinstance(param, CategoricalParam):
        assert any(type(c) is type(value) and c == value for c in param.choices), (
            f"{name} = {value!r} ({type(value).__name__}) is none of {param.choices!r}"
        )
        return
    if isinstance(param, IntParam):
        assert type(value) is int, f"{name} = {value!r} is not a plain int"
        assert param.low <= value <= param.high, f"{name} = {value} out of {param}"
        assert (value - param.low) % param.step == 0, f"{name} = {value} off the step: {param}"
        return
    assert type(value) is float, f"{name} = {value!r} is not a plain float"
    assert param.low <= value <= param.high, f"{name} = {value!r} out of {param}"
    if param.step is not None:
        steps = (value - param.low) / param.step
        assert math.isclose(steps, round(steps), abs_tol=1e-6), f"{name} = {value!r}: {param}"


def check_trial(space: SearchSpace, trial: FrozenTrial, ticket: TrialTicket) -> None:
    """Every property a stored trial must have, whichever searcher proposed it."""
    stored = trial.params
    declared = space.params()
    assert set(stored) <= set(declared), sorted(set(stored) - set(declared))
    missing: list[str] = []

    def read(name: str, param: Param) -> Any:
        if name not in stored:
            missing.append(name)
            return param.choices[0] if isinstance(param, CategoricalParam) else param.low
        return stored[name]

    active = space.sample(read)
    assert not missing, f"active names not stored: {missing} (stored: {sorted(stored)})"
    assert set(active) == set(stored), f"inactive names stored: {set(stored) - set(active)}"
    for name, value in stored.items():
        _check_value(name, declared[name], value)
        stored_as = trial.distributions[name]
        assert stored_as == distribution(declared[name]), name
        assert stored_as._contains(stored_as.to_internal_repr(value)), (name, value, stored_as)
    assert _strict(space.decode(stored)) == _strict(ticket.params)


def _run(folder: Path, kind: str, text: str, data: st.DataObject) -> None:
    asked = SEARCHERS[kind][1]
    directions = data.draw(
        st.lists(st.sampled_from(["maximize", "minimize"]), min_size=1, max_size=2),
        label="directions",
    )
    study = _study(folder, text, kind, directions, asked)
    if kind == "grid":
        asked = min(asked, study.space.size() or 0)
    recorder = Recorder(study, optuna.storages.InMemoryStorage())
    proposed = _spy_on_proposals(recorder)
    metrics = METRICS[: len(directions)]
    running: list[int] = []
    for _ in range(asked):
        ticket = recorder.ask()
        trial = recorder.study.trials[ticket.number]
        check_trial(study.space, trial, ticket)
        if ticket.number in proposed:  # a ProposalSampler's: stored exactly as proposed
            assert _strict(trial.params) == _strict(proposed[ticket.number])
        if kind == "grid":  # a fixed order without repeats
            points = [_strict(t.params) for t in recorder.study.trials]
            assert len(set(points)) == len(points), points
        running.append(ticket.number)
        # Now and then a trial keeps running while the next is asked (concurrent workers).
        if len(running) < 2 and data.draw(st.booleans(), label="keep running"):
            continue
        for number in running:
            _finish(recorder, number, metrics, data)
        running.clear()


def _spy_on_proposals(recorder: Recorder) -> dict[int, dict[str, Any]]:
    """Record what a proposing searcher (hyperopt, random, grid) hands Optuna, by trial."""
    proposed: dict[int, dict[str, Any]] = {}
    searcher = recorder._searcher
    make = searcher.sampler

    def sampler(number: int) -> optuna.samplers.BaseSampler:
        made = make(number)
        if isinstance(made, ProposalSampler):
            propose = made._propose

            def spy(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
                proposed[trial.number] = propose(study, trial)
                return proposed[trial.number]

            made._propose = spy
        return made

    searcher.sampler = sampler  # type: ignore[method-assign]
    return proposed


def _finish(recorder: Recorder, number: int, metrics: list[str], data: st.DataObject) -> None:
    ending = data.draw(st.sampled_from(["complete", "complete", "pruned", "fail"]), label="end")
    values = st.floats(-10, 10, allow_nan=False)
    if ending == "complete":
        last = {"epoch": EPOCHS, "complete": True, **{m: data.draw(values) for m in metrics}}
        outcome = lifecycle.decide(last, objectives=metrics, epochs=EPOCHS)
    elif ending == "pruned":
        reached = data.draw(st.integers(1, EPOCHS - 1), label="epochs reached")
        for epoch in range(1, reached + 1):
            recorder.record_epoch(number, {"epoch": epoch, "val_accuracy": data.draw(values)})
        outcome = lifecycle.decide(
            {"epoch": reached}, objectives=metrics, epochs=EPOCHS, scheduler_stopped=True
        )
    else:
        outcome = lifecycle.decide(None, objectives=metrics, epochs=EPOCHS, error="boom")
    recorder.finish(number, outcome, history=None)
    assert recorder.study.trials[number].state.name == outcome.state


def _property(kind: str, folder: Path) -> Callable[[], None]:
    """The suite's property for one searcher, over the spaces that searcher can take."""
    examples = SEARCHERS[kind][0] * SCALE
    spaces = space_files(categorical=kind != "optuna-cmaes", finite=kind == "grid")
    if kind == "grid":
        spaces = spaces.filter(lambda text: _grid_size(folder, text) <= MAX_GRID)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(text=spaces, data=st.data())
    def check(text: str, data: st.DataObject) -> None:
        _run(folder, kind, text, data)

    return check


def _grid_size(folder: Path, text: str) -> int:
    path = folder / "grid-size.yaml"
    path.write_text(text)
    return load_space(path).size() or 0


@pytest.mark.parametrize("kind", list(SEARCHERS))
def test_every_searcher_stores_valid_trials_of_random_spaces(kind: str, folder: Path) -> None:
    _property(kind, folder)()
