"""The hyperopt converter: its space, its view of the stored study, and TPE learning from it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hyperopt
import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpsearch import lifecycle
from hpsearch.recorder import Recorder, open_storage
from hpsearch.searchers import Scalarisation, make_searcher
from hpsearch.searchers._hyperopt import HyperoptSearcher, HyperoptSpace, judged_losses
from hpsearch.searchers._optuna import distributions, suggest
from hpsearch.seeding import derive_seed
from hpsearch.spec import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
    Study,
    StudySpec,
    load_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

EVERY_KIND = """
params:
  uniform: {type: float, low: -1.5, high: 2.5}
  log: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  stepped: {type: float, low: 0.1, high: 0.7, step: 0.2}
  one_float: {type: float, low: 0.3, high: 0.3}
  ints: {type: int, low: -3, high: 4}
  every_3: {type: int, low: 2, high: 14, step: 3}
  log_int: {type: int, low: 1, high: 300, log: true}
  one_int: {type: int, low: 5, high: 5}
  mixed: {type: categorical, choices: [2, true, 0, null, 1.5, "a"]}
  one_choice: {type: categorical, choices: [null]}
  model:
    type: choice
    options:
      plain: {}
      deep:
        blocks: {type: int, low: 1, high: 3}
        cell:
          type: choice
          options:
            gru: {units: {type: int, low: 4, high: 64, log: true}}
            lstm:
              peephole:
                type: choice
                options:
                  absent: {}
                  present: {width: {type: float, low: 0.0, high: 1.0, step: 0.25}}
        only:
          type: choice
          options:
            one: {depth: {type: int, low: 1, high: 2}}
      wide: {filters: 8}
"""


def _space(tmp_path: Path, text: str) -> SearchSpace:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(path)


def _study(
    space: SearchSpace,
    objectives: list[tuple[str, str]] | None = None,
    weights: list[float] | None = None,
    n_startup: int = 5,
    mode: str = "max",
) -> Study:
    searcher: dict[str, Any] = {"type": "hyperopt-tpe", "n_startup_trials": n_startup}
    if weights is not None:
        searcher["weights"] = weights
    spec = StudySpec.model_validate(
        {
            "name": "hyperopt",
            "task": "hyperopt",
            "space": str(space.source),
            "seed": 3,
            "data": {"path": "unused.h5"},
            "objectives": [
                {"metric": metric, "direction": direction}
                for metric, direction in objectives or [("val_accuracy", "maximize")]
            ],
            "searcher": searcher,
            "scheduler": {"metric": "val_accuracy", "mode": mode},
            "budget": {"trials": 50, "epochs": 3},
        }
    )
    return Study(space.source.parent / "study.yaml", spec, space)


def _strict(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _random_point(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A point of the space drawn independently of hyperopt (values exactly as declared)."""

    def draw(name: str, param: Param) -> Any:
        if isinstance(param, CategoricalParam):
            return param.choices[int(rng.integers(len(param.choices)))]
        if isinstance(param, IntParam):
            return param.low + int(rng.integers(param.size())) * param.step
        if isinstance(param, FloatParam) and param.step is not None:
            return min(param.low + int(rng.integers(param.size() or 1)) * param.step, param.high)
        return float(rng.uniform(param.low, param.high))

    return space.sample(draw)


def test_hyperopt_draws_decode_to_points_of_the_space_and_encode_back(tmp_path: Path) -> None:
    """hyperopt's own prior draws: the labels it makes active are exactly the names the
    space's walk makes active, every value is in range, on its step and a declared choice,
    and encoding the decoded point gives hyperopt's raw values back."""
    space = _space(tmp_path, EVERY_KIND)
    converted = HyperoptSpace(space)
    single = {"one_float", "one_int", "one_choice", "model.deep.only"}
    assert set(converted.labels) == set(space.params()) - single
    domain = converted.domain()
    assert set(domain.params) == set(converted.labels)
    branches = set()
    for seed in range(200):
        (doc,) = hyperopt.rand.suggest([seed], domain, hyperopt.Trials(), seed)
        vals = doc["misc"]["vals"]
        flat = converted.decode(vals)
        branches.add((flat["model"], flat.get("model.deep.cell")))
        assert {name for name, raw in vals.items() if raw} == set(flat) & set(converted.labels)
        for name, value in flat.items():
            param = space.params()[name]
            if isinstance(param, CategoricalParam):
                assert any(type(c) is type(value) and c == value for c in param.choices)
            else:
                assert param.low <= value <= param.high, (name, value)
                assert type(value) is (int if isinstance(param, IntParam) else float)
        assert flat["one_float"] == 0.3 and flat["one_int"] == 5 and flat["one_choice"] is None
        assert converted.encode(flat) == {k: [float(v) for v in raw] for k, raw in vals.items()}
        space.decode(flat)  # every active value is there
    assert branches == {("plain", None), ("wide", None), ("deep", "gru"), ("deep", "lstm")}


def test_points_of_the_space_survive_encoding_exactly(tmp_path: Path) -> None:
    """Encode then decode gives the very values, types included: True is not 1, 1.5 stays
    a float, None stays None; a stepped float comes back as the same grid point, written
    in decimal (0.3 for another searcher's 0.30000000000000004)."""
    space = _space(tmp_path, EVERY_KIND)
    converted = HyperoptSpace(space)
    rng = np.random.default_rng(0)
    mixed = set()
    for _ in range(300):
        point = _random_point(space, rng)
        vals = converted.encode(point)
        assert {k for k, raw in vals.items() if raw} == set(point) & set(converted.labels)
        back = converted.decode(vals)
        assert back.keys() == point.keys()
        for name, value in point.items():
            if name.endswith(("stepped", "width")):
                assert back[name] == pytest.approx(value, abs=1e-12)
                assert back[name] == round(value, 10)
            else:
                assert _strict(back[name]) == _strict(value), name
        mixed.add(_strict(back["mixed"]))
    assert mixed == {_strict(c) for c in [2, True, 0, None, 1.5, "a"]}


def test_stepped_and_log_integer_ranges_stay_in_range_and_on_the_grid(tmp_path: Path) -> None:
    """hyperopt's quniform rounds to multiples of q from 0 and may round past the ends; the
    index encoding and clipping keep every decoded value a grid point."""
    space = _space(
        tmp_path,
        "params:\n"
        "  f: {type: float, low: 0.15, high: 1.05, step: 0.3}\n"
        "  i: {type: int, low: -7, high: 5, step: 4}\n"
        "  l: {type: int, low: 1, high: 3, log: true}\n",
    )
    converted = HyperoptSpace(space)
    f, i, lg = (converted.labels[name] for name in ("f", "i", "l"))
    decoded = [f.decode(k) for k in (-0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 99.0)]
    assert decoded == [0.15, 0.15, 0.45, 0.75, 1.05, 1.05, 1.05]  # not 0.44999999999999996
    assert [i.decode(k) for k in (-1.0, 0.0, 1.0, 3.0, 3.4, 7.0)] == [-7, -7, -3, 5, 5, 5]
    assert [lg.decode(v) for v in (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)] == [1, 1, 1, 2, 3, 3]
    assert (f.encode(0.75), i.encode(1), lg.encode(2)) == (2.0, 2.0, 2.0)


Past = tuple[float, list[float] | None, dict[int, float] | None]


def _history(study: Study, trials: Sequence[Past]) -> optuna.Study:
    """A stored study of x-only trials: (x, values) COMPLETE or (x, None, curve) PRUNED."""
    stored = optuna.create_study(directions=[o.direction for o in study.spec.objectives])
    dists = distributions(study.space)
    for x, values, curve in trials:
        state = TrialState.COMPLETE if values is not None else TrialState.PRUNED
        stored.add_trial(
            create_trial(
                state=state,
                params={"x": x},
                distributions={"x": dists["x"]},
                values=values,
                intermediate_values=curve,
            )
        )
    return stored


def _proposals(stored: optuna.Study, study: Study, n: int = 20) -> list[float]:
    """hyperopt's next n proposals, each withdrawn at once (FAIL: hyperopt ignores it)."""
    searcher = HyperoptSearcher(study)
    drawn = []
    for _ in range(n):
        stored.sampler = searcher.sampler(len(stored.trials))
        trial = stored.ask()
        drawn.append(suggest(study.space, trial)["x"])
        stored.tell(trial, state=TrialState.FAIL)
    return drawn


X = "params:\n  x: {type: float, low: 0.0, high: 1.0}\n"


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_tpe_proposes_where_the_history_was_good(tmp_path: Path, direction: str) -> None:
    """Accuracy falls with x. Maximised, hyperopt must propose x < 0.25 far more often
    than random search (1 in 4); minimised, x > 0.75. The history is stored from the middle
    outwards, so a searcher that ignored the losses (TPE breaks ties by order) would
    propose near 0.5, and one that inverted or did not negate them in the wrong quarter."""
    study = _study(_space(tmp_path, X), [("val_accuracy", direction)])
    xs = sorted(np.linspace(0.0, 1.0, 30), key=lambda x: abs(x - 0.5))
    stored = _history(study, [(x, [1.0 - x], None) for x in xs])
    drawn = _proposals(stored, study)
    good = [x for x in drawn if (x < 0.25 if direction == "maximize" else x > 0.75)]
    assert len(good) >= 14, drawn


def test_pruned_trials_rank_below_every_complete_trial(tmp_path: Path) -> None:
    """Complete trials near x=1 are all poor; pruned ones near x=0 (stored first) went far
    and looked good to the scheduler. hyperopt must still prefer the complete trials'
    region."""
    study = _study(_space(tmp_path, X))
    pruned: list[Past] = [(0.01 * i, None, {1: 0.9, 2: 0.95}) for i in range(20)]
    complete: list[Past] = [(0.8 + 0.02 * i, [0.01 * i], None) for i in range(10)]
    stored = _history(study, pruned + complete)
    high = sum(x > 0.5 for x in _proposals(stored, study))
    assert high >= 15, high


def test_pruned_trials_that_went_further_rank_better(tmp_path: Path) -> None:
    study = _study(_space(tmp_path, X))
    stored = _history(
        study,
        [(0.01 * i, None, {1: 0.9}) for i in range(15)]
        + [(0.9 + 0.005 * i, None, {1: 0.2, 2: 0.3}) for i in range(15)],
    )
    high = sum(x > 0.5 for x in _proposals(stored, study))
    assert high >= 15, high


def _frozen(
    number: int,
    state: TrialState,
    values: list[float] | None = None,
    curve: dict[int, float] | None = None,
) -> FrozenTrial:
    trial = create_trial(
        state=state,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0.0, 1.0)},
        values=values,
        intermediate_values=curve,
    )
    trial.number = number
    return trial


def test_losses_order_complete_then_pruned_by_epochs_then_scheduler_value() -> None:
    first = Scalarisation.of(["val_accuracy"], ["maximize"], None)
    trials = [
        _frozen(0, TrialState.COMPLETE, [0.9]),
        _frozen(1, TrialState.COMPLETE, [0.5]),
        _frozen(2, TrialState.PRUNED, curve={1: 0.1, 2: 0.2}),
        _frozen(3, TrialState.PRUNED, curve={1: 0.99}),
        _frozen(4, TrialState.PRUNED, curve={1: 0.1, 2: 0.8}),
        _frozen(5, TrialState.PRUNED),
        _frozen(6, TrialState.FAIL),
        _frozen(7, TrialState.RUNNING),
        _frozen(8, TrialState.COMPLETE, [0.9]),
    ]
    losses = judged_losses(trials, first, "max")
    assert set(losses) == {0, 1, 2, 3, 4, 5, 8}  # FAIL and RUNNING have no loss
    order = sorted(losses, key=lambda n: (losses[n], n))
    assert order == [0, 8, 1, 4, 2, 3, 5]
    assert losses[0] == losses[8]  # equal values, equal rank
    # With the scheduler minimising (a loss curve), the lower last value ranks first.
    by_min = judged_losses(trials, first, "min")
    assert by_min[2] < by_min[4]


def test_a_maximised_objective_is_negated_and_weights_are_applied() -> None:
    trials = [
        _frozen(0, TrialState.COMPLETE, [0.9, 30.0]),  # accurate, slow
        _frozen(1, TrialState.COMPLETE, [0.6, 5.0]),  # poor, fast
        _frozen(2, TrialState.COMPLETE, [0.8, 10.0]),
    ]
    metrics, directions = ["val_accuracy", "seconds"], ["maximize", "minimize"]

    def order(weights: list[float] | None) -> list[int]:
        losses = judged_losses(trials, Scalarisation.of(metrics, directions, weights), "max")
        return sorted(losses, key=losses.__getitem__)

    assert order(None) == [0, 2, 1]  # the first objective alone, maximised
    assert order([0.0, 1.0]) == [1, 2, 0]  # seconds alone, minimised
    assert order([100.0, 1.0]) == [2, 0, 1]  # losses -60, -55, -70


def test_the_objectives_note_states_the_scalarisation(tmp_path: Path) -> None:
    space = _space(tmp_path, X)
    two = [("val_accuracy", "maximize"), ("seconds", "minimize")]
    assert HyperoptSearcher(_study(space, two)).objectives_note() == (
        "hyperopt-tpe: single-objective, minimises -val_accuracy; seconds not seen by the searcher"
    )
    assert HyperoptSearcher(_study(space, two, weights=[1.0, 0.5])).objectives_note() == (
        "hyperopt-tpe: single-objective, minimises -val_accuracy + 0.5*seconds"
    )


def test_running_trials_are_pending_and_do_not_end_the_random_start(tmp_path: Path) -> None:
    """A RUNNING trial enters as a document without a result (TPE: an infinite loss), FAIL
    trials not at all; while fewer than n_startup_trials are judged, hyperopt draws at
    random whatever is running."""
    study = _study(_space(tmp_path, X), n_startup=3)
    searcher = HyperoptSearcher(study)
    stored = _history(study, [(0.1, [0.5], None), (0.2, [0.6], None)])
    for _ in range(3):  # concurrent workers' trials, still RUNNING
        stored.ask().suggest_float("x", 0.0, 1.0)
    failed = stored.ask()
    failed.suggest_float("x", 0.0, 1.0)
    stored.tell(failed, state=TrialState.FAIL)
    current = stored.ask()
    history, pending = searcher.history(stored.get_trials(), current.number)
    assert pending == 3
    by_tid = {doc["tid"]: doc for doc in history.trials}
    assert sorted(by_tid) == [0, 1, 2, 3, 4]  # neither the FAIL trial nor the current one
    assert [by_tid[n]["result"].get("loss") for n in range(5)] == [1.0, 0.0, None, None, None]
    seed = 12345
    (expected,) = hyperopt.rand.suggest([current.number], searcher._domain, history, seed)
    (got,) = hyperopt.tpe.suggest(
        [current.number],
        searcher._domain,
        history,
        seed,
        n_startup_jobs=3 + pending,
        verbose=False,
    )
    assert got["misc"]["vals"] == expected["misc"]["vals"]


def _run(recorder: Recorder, n: int) -> list[dict[str, Any]]:
    asked = []
    for i in range(n):
        ticket = recorder.ask()
        asked.append(ticket.params)
        x = ticket.params["x"]
        if i % 4 == 3:  # some trials the scheduler stopped
            recorder.record_epoch(ticket.number, {"epoch": 1, "val_accuracy": x})
            outcome = lifecycle.decide(
                {"epoch": 1}, objectives=["val_accuracy"], epochs=3, scheduler_stopped=True
            )
        else:
            last = {"epoch": 3, "complete": True, "val_accuracy": 1 - abs(x - 0.3)}
            outcome = lifecycle.decide(last, objectives=["val_accuracy"], epochs=3)
        recorder.finish(ticket.number, outcome, history=None)
    return asked


def test_a_resumed_study_warms_hyperopt_from_storage(tmp_path: Path) -> None:
    """hyperopt keeps nothing between trials: a new searcher on the stored study proposes a
    new point, the same one for the same history, and past the random start."""
    text = X + "  c: {type: categorical, choices: [true, false, null]}\n"
    study = _study(_space(tmp_path, text), n_startup=3)
    first = tmp_path / "first.db"
    recorder = Recorder(study, open_storage(f"sqlite:///{first}"))
    assert isinstance(recorder._searcher, HyperoptSearcher)
    before = _run(recorder, 8)
    recorder.storage.engine.dispose()  # type: ignore[attr-defined]  # SQLite: WAL written back
    copy = tmp_path / "copy.db"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{first}{suffix}").exists():
            shutil.copy(f"{first}{suffix}", f"{copy}{suffix}")

    resumed = [Recorder(study, open_storage(f"sqlite:///{p}")).ask() for p in (first, copy)]
    assert resumed[0].number == resumed[1].number == 8
    assert _strict(resumed[0].params) == _strict(resumed[1].params)
    assert resumed[0].params not in before
    # Past the random start, TPE used the history: not the random draw for this trial.
    searcher = make_searcher(study)
    assert isinstance(searcher, HyperoptSearcher)
    stored = optuna.load_study(study_name="hyperopt", storage=f"sqlite:///{copy}")
    history, _ = searcher.history(stored.get_trials(), 8)
    seed = derive_seed(study.spec.seed, "sampler", 8)
    (random_doc,) = hyperopt.rand.suggest([8], searcher._domain, history, seed)
    assert resumed[0].params["x"] != searcher._space.decode(random_doc["misc"]["vals"])["x"]


def test_a_space_of_single_values_needs_no_hyperopt(tmp_path: Path) -> None:
    space = _space(
        tmp_path,
        "params:\n"
        "  x: {type: float, low: 2.0, high: 2.0, step: 0.5}\n"
        "  c: {type: categorical, choices: [false]}\n"
        "  m: {type: choice, options: {only: {n: {type: int, low: 4, high: 4}, k: 1}}}\n",
    )
    study = _study(space, n_startup=1)
    recorder = Recorder(study, optuna.storages.InMemoryStorage())
    for _ in range(3):
        ticket = recorder.ask()
        assert ticket.params == {"x": 2.0, "c": False, "m": {"name": "only", "n": 4, "k": 1}}
        last = {"epoch": 3, "complete": True, "val_accuracy": 0.5}
        outcome = lifecycle.decide(last, objectives=["val_accuracy"], epochs=3)
        recorder.finish(ticket.number, outcome, history=None)


def test_importing_hpsearch_and_its_searchers_does_not_import_hyperopt() -> None:
    code = (
        "import sys, hpsearch, hpsearch.searchers, hpsearch.recorder;"
        "sys.exit(1 if 'hyperopt' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
