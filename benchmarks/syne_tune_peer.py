"""Syne Tune's ASHA and MOASHA on our learning-curve table, through Syne Tune's own simulator.

A peer for ``benchmarks/search_efficiency.py``: the same recorded table
(``benchmarks/curves/xgamma_families_16k.h5`` by default, see ``hpsearch curves record``) is
turned into a Syne Tune blackbox and searched by Syne Tune's ``ASHA`` (random searcher, on
``val_accuracy``) and ``MOASHA`` (``val_accuracy`` up, ``train_seconds`` down), each with max_t
= the table's epochs, grace period 2 and reduction factor 2, on Syne Tune's simulator backend
(``UserBlackboxBackend`` + ``SimulatorCallback``), 2 workers, one run per seed.

It runs in a virtualenv of its own, never the project's ``.venv`` (hpsearch is not imported;
the HDF5 file is read with h5py)::

    python3 -m venv benchmarks/.syne-venv
    benchmarks/.syne-venv/bin/pip install syne-tune==0.16.0 huggingface_hub==2.4.0 h5py==3.16.0
    benchmarks/.syne-venv/bin/python benchmarks/syne_tune_peer.py            # 20 seeds x 200
    .venv/bin/python benchmarks/search_efficiency.py --peers /tmp/syne_traces.json

Pinned: syne-tune 0.16.0 (the release that was current on PyPI; it has no ``basic`` extra any
more, its core requirements bring pandas, scikit-learn, xgboost, statsmodels). huggingface_hub
is needed only because ``syne_tune.blackbox_repository`` imports it at module level; nothing is
downloaded. Tested with Python 3.11.

**Blackbox.** The table's COMPLETE rows become a ``BlackboxTabular`` (fidelity ``epoch`` =
1..epochs, one seed, objectives ``val_accuracy``, ``neg_val_accuracy`` (for MOASHA, which
minimises every metric), ``train_seconds``, ``wall_seconds``, and ``row``, the row's index in
the file). FAIL rows are left out (Syne Tune's tabular blackbox would forward-fill a failed
curve as if training had gone on for free). Syne Tune's ``add_surrogate(blackbox,
KNeighborsRegressor(n_neighbors=1), predict_curves=True)`` fits its feature pipeline + 1-NN on
the rows: a proposal is answered by the whole curve of its nearest recorded row that the
search has not run yet, the rule of hpsearch's replay (a row answers once per search; the
nearest of all once every row has run): the surrogate's feature pipeline and distances are
Syne Tune's, only the choice among its neighbours is this script's (``NearestRow.answer``).

**Space and distance.** Syne Tune's searchers see the study's whole space, flattened to the
dotted names the table uses (every parameter of every branch; read from the table's
description, ``meta["space"]``, or from ``--space FILE.json``). Before a proposal is looked
up, the parameters of branches it did not take (``model.cnn.*`` when ``model`` is ``lstm``) are
set to "absent", exactly as they are absent from the rows. Features, as Syne Tune's surrogate
pipeline builds them from what this script hands it:

* categorical parameters and the conditional choices (model, optimizer, lr_schedule): one-hot,
  with "absent" a category of its own;
* numbers: mapped onto [0, 1] (on a log scale where the space says ``log``), absent = -1;
* then Syne Tune's ``StandardScaler`` on the numbers and ``StandardScaler(with_mean=False)`` on
  all features (every feature divided by its standard deviation over the rows);
* distance: Euclidean over those features (``KNeighborsRegressor`` default, n_neighbors=1).

Each trial's trace records the row that answered it and that distance.

**Clock.** Each report happens at the trial's start + the row's cumulative ``wall_seconds``
(``elapsed_time_attr``), plus Syne Tune's simulated delays (0.05 s to start, 0.05 s per report).
The tuner polls every ``--poll`` simulated seconds while all workers are busy (Syne Tune's
default, 5 s, is longer than most of this table's epochs; 0.1 s here), and Syne Tune also
charges the tuner's own real compute time to the simulated clock, as it always does, so a
run's times vary by milliseconds between repetitions.

**MOASHA as shipped.** syne-tune 0.16.0's MOASHA misreads its non-dominated sort (an order
of trial indices) as one priority per trial, so its rung decisions are close to arbitrary: a
trial that dominates every trial at its rung can be stopped (see :class:`NonDominatedRank`).
``syne-moasha`` runs it as shipped; ``--strategies syne-moasha-rankfix`` runs it with the rank
corrected through MOASHA's own ``multiobjective_priority`` argument.

**Output.** ``--out`` (default ``/tmp/syne_traces.json``) gets ``{"labels": {...}, "runs":
[...]}`` (what ``search_efficiency.py --peers`` reads), and beside it one file per strategy,
``<out stem>.<strategy>.json``, with that strategy's list of runs. A run is ``{"strategy",
"seed", "wall", "trials": [{"start", "end", "state", "row", "distance", "reports": [[time,
epoch, val_accuracy, train_seconds], ...]}]}``: times in simulated seconds from the run's
start, ``reports`` every result the tuner received from the trial (a pruned trial's results
that the simulated worker produced after the one that stopped it are not delivered by Syne
Tune), ``state`` COMPLETE when the trial reached the last epoch, else PRUNED, ``end`` the
simulated time the scheduler stopped it (which frees its worker).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import math
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsRegressor
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
from syne_tune.blackbox_repository import UserBlackboxBackend, add_surrogate
from syne_tune.blackbox_repository.blackbox import Blackbox
from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
from syne_tune.config_space import (
    choice,
    lograndint,
    loguniform,
    qlograndint,
    qloguniform,
    qrandint,
    quniform,
    randint,
    uniform,
)
from syne_tune.constants import ST_TUNER_TIME
from syne_tune.optimizer.baselines import ASHA
from syne_tune.optimizer.scheduler import SchedulerDecision
from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import (
    NonDominatedPriority,
)
from syne_tune.tuner_callback import TunerCallback
from syne_tune.tuner_logger import TunerLogger
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "curves" / "xgamma_families_16k.h5"
META_KEY = "hpsearch_curves"

#: What a parameter of a branch not taken is encoded as: a category, or a number below [0, 1].
ABSENT = "-"
ABSENT_NUMBER = -1.0
#: The blackbox's objectives (``neg_val_accuracy``: MOASHA minimises all its metrics; ``row``:
#: which recorded row answered, carried through the surrogate unchanged by 1-NN).
OBJECTIVES = ("val_accuracy", "neg_val_accuracy", "train_seconds", "wall_seconds", "row")
STRATEGIES = {
    "syne-asha": "Syne Tune ASHA, random searcher (grace 2, factor 2), on val_accuracy",
    "syne-moasha": "Syne Tune MOASHA, random (grace 2, factor 2), val_accuracy + train_seconds",
    # Not run by default: MOASHA with its rung ranking corrected (see NonDominatedRank).
    "syne-moasha-rankfix": "Syne Tune MOASHA, rung ranking corrected (see syne_tune_peer.py)",
}
DEFAULT_STRATEGIES = ("syne-asha", "syne-moasha")


# -- the table and its space -------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One flat parameter of the space.

    Attributes:
        name: Dotted name, as in the table's rows.
        kind: ``float``, ``int`` or ``categorical`` (a conditional choice is categorical).
        when: (choice parameter, option) pairs that must all hold for the parameter to exist.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, str], ...] = ()

    def active(self, config: dict[str, Any]) -> bool:
        return all(config.get(parent) == option for parent, option in self.when)

    def domain(self) -> Any:
        """The Syne Tune domain searchers sample."""
        if self.kind == "categorical":
            return choice(list(self.choices))
        if self.kind == "int":
            low, high = int(self.low), int(self.high)
            step = int(self.step or 1)
            if step > 1:
                return qlograndint(low, high, step) if self.log else qrandint(low, high, step)
            return lograndint(low, high) if self.log else randint(low, high)
        if self.step:
            return (qloguniform if self.log else quniform)(self.low, self.high, self.step)
        return (loguniform if self.log else uniform)(self.low, self.high)

    def encode(self, config: dict[str, Any]) -> str | float:
        """The feature the surrogate sees: a category's text, a number on [0, 1], or absent."""
        value = config.get(self.name) if self.active(config) else None
        if isinstance(value, np.generic):
            value = value.item()
        if self.kind == "categorical":
            return ABSENT if value is None else str(value)
        if value is None:
            return ABSENT_NUMBER
        if self.log:
            low, high, value = math.log(self.low), math.log(self.high), math.log(value)
        else:
            low, high = float(self.low), float(self.high)
        return 0.0 if high == low else (float(value) - low) / (high - low)


def flatten(node: dict[str, Any], prefix: str = "", when: tuple = ()) -> list[Param]:
    """The space's tree (``SearchSpace.to_dict()["params"]``) as flat dotted parameters."""
    out: list[Param] = []
    for key, spec in node.items():
        name = f"{prefix}{key}"
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind is None and isinstance(spec, dict):  # a group
            out += flatten(spec, f"{name}.", when)
        elif kind == "choice":
            out.append(Param(name, "categorical", choices=tuple(spec["options"]), when=when))
            for option, sub in spec["options"].items():
                out += flatten(sub or {}, f"{name}.{option}.", (*when, (name, option)))
        elif kind == "categorical":
            out.append(Param(name, kind, choices=tuple(spec["choices"]), when=when))
        elif kind in ("float", "int"):
            step = spec.get("step")
            out.append(
                Param(
                    name,
                    kind,
                    low=spec["low"],
                    high=spec["high"],
                    log=bool(spec.get("log")),
                    step=None if kind == "int" and step in (None, 1) else step,
                    when=when,
                )
            )
        else:
            raise SystemExit(f"space: {name} has a type this script does not know: {spec!r}")
    return out


@dataclass(frozen=True)
class Table:
    """What the script needs of a learning-curve table (see ``hpsearch.curves``)."""

    params: list[dict[str, Any]]
    state: list[str]
    metrics: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def epochs(self) -> int:
        return int(self.metrics["wall_seconds"].shape[1])


def read_table(path: Path) -> Table:
    with h5py.File(path, "r") as file:
        meta = json.loads(file.attrs[META_KEY]) if META_KEY in file.attrs else {}
        params = [json.loads(p) for p in file["params"].asstr()[()]]
        state = list(file["state"].asstr()[()])
        metrics = {
            name: np.asarray(data[()], dtype=float)
            for name, data in file["metrics"].items()
            if name in ("val_accuracy", "train_seconds", "wall_seconds")
        }
    return Table(params, state, metrics, meta)


def read_space(table: Table, space_file: Path | None) -> list[Param]:
    if space_file is not None:
        tree = json.loads(space_file.read_text())
    elif "space" in table.meta:
        tree = table.meta["space"]
    else:
        raise SystemExit(
            "the table's description has no space (a table written by `hpsearch curves record` "
            "has one); give it with --space FILE.json (SearchSpace.to_dict() as JSON)"
        )
    params = flatten(tree.get("params", tree))
    names = {p.name for p in params}
    unknown = sorted({k for row in table.params for k in row} - names)
    if unknown:
        raise SystemExit(f"the table's rows have parameters the space lacks: {unknown}")
    return params


# -- the blackbox ------------------------------------------------------------------------


class NearestRow(Blackbox):
    """The study's whole flat space, answered by Syne Tune's 1-NN surrogate of the rows.

    Parameters of branches a configuration did not take are set to absent before the lookup
    (the rows lack them too); the returned curves gain a ``distance`` column, the surrogate's
    distance to the row that answered.
    """

    def __init__(self, surrogate: Blackbox, params: list[Param]) -> None:
        super().__init__(
            configuration_space={p.name: p.domain() for p in params},
            fidelity_space=surrogate.fidelity_space,
            objectives_names=[*surrogate.objectives_names, "distance"],
        )
        self.surrogate = surrogate
        self.params = params
        self.rows: list[int] = []  # the table's rows it holds
        self.values = np.zeros((0, 0, 0))  # (rows, epochs, objectives), as the surrogate's
        pipeline = surrogate.surrogate_pipeline[0]
        self._features, self._knn = pipeline[:-1], pipeline[-1]
        self._answered: dict[tuple, int] = {}  # this search's proposals -> row position

    def new_search(self) -> None:
        """Forget which rows have run: a row answers once per search (see ``answer``)."""
        self._answered.clear()

    def answer(self, encoded: dict[str, Any]) -> tuple[int, float]:
        """The row position that answers a proposal, and the surrogate's distance to it.

        As in hpsearch's replay (``_Answers`` in ``hpsearch/runner/_replay.py``): the nearest
        row that this search has not run yet (the nearest of all once every row has run);
        the same configuration again gets the same row.
        """
        features = self._features.transform(pd.DataFrame([encoded]))
        distances, order = self._knn.kneighbors(features, n_neighbors=len(self.rows))
        key = tuple(sorted((name, str(value)) for name, value in encoded.items()))
        if key not in self._answered:
            taken = set(self._answered.values())
            free = [j for j, position in enumerate(order[0]) if position not in taken]
            self._answered[key] = int(order[0][free[0] if free else 0])
        position = self._answered[key]
        at = int(np.flatnonzero(order[0] == position)[0])
        return position, float(distances[0, at])

    @property
    def fidelity_values(self) -> np.ndarray:
        return self.surrogate.fidelity_values

    def encode(self, configuration: dict[str, Any]) -> dict[str, Any]:
        return {p.name: p.encode(configuration) for p in self.params}

    def _objective_function(
        self,
        configuration: dict[str, Any],
        fidelity: dict | None = None,
        seed: int | None = None,
    ) -> Any:
        position, distance = self.answer(self.encode(configuration))
        curves = self.values[position]
        if fidelity is None:  # every epoch: (epochs, objectives)
            return np.hstack([curves, np.full((len(curves), 1), distance)])
        epoch = int(np.flatnonzero(self.fidelity_values == fidelity["epoch"])[0])
        return {
            **dict(zip(self.surrogate.objectives_names, curves[epoch].tolist(), strict=True)),
            "distance": distance,
        }


def build_blackbox(table: Table, params: list[Param]) -> tuple[NearestRow, dict[str, int]]:
    """The blackbox of the table's COMPLETE rows; and what was left out, by reason."""
    epochs = table.epochs
    left_out = {"FAIL": 0, "non-finite": 0, "duplicate": 0}
    seen: set[tuple] = set()
    rows, encoded = [], []
    for i, (flat, state) in enumerate(zip(table.params, table.state, strict=True)):
        if state != "COMPLETE":
            left_out["FAIL"] += 1
            continue
        if not all(np.isfinite(table.metrics[m][i]).all() for m in table.metrics):
            left_out["non-finite"] += 1
            continue
        features = {p.name: p.encode(flat) for p in params}
        key = tuple(features.values())
        if key in seen:  # the earlier row answers, as in hpsearch's Neighbours
            left_out["duplicate"] += 1
            continue
        seen.add(key)
        rows.append(i)
        encoded.append(features)
    accuracy = table.metrics["val_accuracy"][rows]
    values = np.stack(
        [
            accuracy,
            -accuracy,
            table.metrics["train_seconds"][rows],
            table.metrics["wall_seconds"][rows],
            np.repeat(np.asarray(rows, dtype=float)[:, None], epochs, axis=1),
        ],
        axis=-1,
    )  # (rows, epochs, objectives)
    feature_space = {
        p.name: choice([*(str(c) for c in p.choices), ABSENT])
        if p.kind == "categorical"
        else uniform(ABSENT_NUMBER, 1.0)
        for p in params
    }
    tabular = BlackboxTabular(
        hyperparameters=pd.DataFrame(encoded, columns=[p.name for p in params]),
        configuration_space=feature_space,
        fidelity_space={"epoch": randint(1, epochs)},
        objectives_evaluations=values[:, None, :, :],  # one seed
        fidelity_values=np.arange(1, epochs + 1),
        objectives_names=list(OBJECTIVES),
    )
    surrogate = add_surrogate(
        tabular, surrogate=KNeighborsRegressor(n_neighbors=1), predict_curves=True
    )
    blackbox = NearestRow(surrogate, params)
    blackbox.rows = rows
    blackbox.values = values
    # The rows' positions in the 1-NN must be their positions in ``values``; each row is its
    # own nearest neighbour and the surrogate answers it with its own curve.
    for position, features in enumerate(encoded):
        own = surrogate.objective_function(features, seed=0)
        answer, distance = blackbox.answer(features)
        if answer != position or distance > 1e-6 or not np.allclose(own, values[position]):
            raise RuntimeError(f"row {rows[position]}: the 1-NN does not answer it with itself")
        blackbox.new_search()
    return blackbox, left_out


# -- one search --------------------------------------------------------------------------


class Silent(TunerLogger):
    """Syne Tune's tuner logger without its per-trial lines."""


for _name in dir(TunerLogger):
    if _name.startswith("print_"):
        setattr(Silent, _name, lambda self, *args, **kwargs: None)


class TraceCallback(TunerCallback):
    """Each trial's start, reports and end on the simulated clock."""

    def __init__(self) -> None:
        self.trials: dict[int, dict[str, Any]] = {}
        self.clock: Any = None

    def on_tuning_start(self, tuner: Tuner) -> None:
        self.clock = tuner.trial_backend.time_keeper

    def on_start_trial(self, trial: Any) -> None:
        self.trials[trial.trial_id] = {"start": self.clock.time(), "end": None, "reports": []}

    def on_trial_result(self, trial: Any, status: str, result: dict, decision: str) -> None:
        record = self.trials[trial.trial_id]
        record["reports"].append(
            [
                float(result[ST_TUNER_TIME]),
                int(result["epoch"]),
                float(result["val_accuracy"]),
                float(result["train_seconds"]),
            ]
        )
        record["row"] = int(result["row"])
        record["distance"] = float(result["distance"])
        if decision == SchedulerDecision.STOP:
            record["end"] = self.clock.time()

    def trace(self, epochs: int) -> list[dict[str, Any]]:
        out = []
        for _, record in sorted(self.trials.items()):
            reports = record["reports"]
            end = record["end"]
            if end is None:
                end = reports[-1][0] if reports else record["start"]
            complete = bool(reports) and reports[-1][1] == epochs
            out.append(
                {
                    "start": record["start"],
                    "end": end,
                    "state": "COMPLETE" if complete else "PRUNED",
                    "row": record.get("row"),
                    "distance": record.get("distance"),
                    "reports": reports,
                }
            )
        return out


class NonDominatedRank(NonDominatedPriority):
    """Syne Tune's non-dominated sort as each trial's rank (0 = first), for MOASHA's rungs.

    In syne-tune 0.16.0, ``NonDominatedPriority`` returns the *order* (the trials' indices,
    best first) while MOASHA's ``Bracket.on_result`` reads its result as one priority per
    trial, so a trial is judged by the index of whichever trial sorts last: a trial that
    dominates every trial at its rung is stopped whenever the worst one is not among the first
    half recorded. Inverting the order gives the priorities Bracket expects; passed through
    MOASHA's own ``multiobjective_priority`` argument (strategy ``syne-moasha-rankfix``).
    """

    def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
        order = super().priority_unsafe(objectives)
        rank = np.empty(len(order), dtype=int)
        rank[order] = np.arange(len(order))
        return rank


def make_scheduler(strategy: str, space: dict, epochs: int, seed: int, args: Any) -> Any:
    rungs = {
        "time_attr": "epoch",
        "max_t": epochs,
        "grace_period": args.grace_period,
        "reduction_factor": args.reduction_factor,
        "random_seed": seed,
    }
    if strategy == "syne-asha":
        return ASHA(space, metric="val_accuracy", do_minimize=False, **rungs)
    if strategy in ("syne-moasha", "syne-moasha-rankfix"):
        return MOASHA(
            space,
            metrics=["neg_val_accuracy", "train_seconds"],
            do_minimize=True,
            multiobjective_priority=(
                NonDominatedRank() if strategy == "syne-moasha-rankfix" else None
            ),
            **rungs,
        )
    raise SystemExit(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}")


def cap_trials(scheduler: Any, trials: int) -> None:
    """After ``trials`` suggestions the scheduler has no more: Syne Tune lets running trials
    finish and stops (its "configuration space exhausted" path), so exactly ``trials`` run."""
    suggest, count = scheduler.suggest, itertools.count()
    scheduler.suggest = lambda: suggest() if next(count) < trials else None


def search(strategy: str, seed: int, blackbox: NearestRow, epochs: int, args: Any) -> dict:
    """One Syne Tune run on the simulator backend: its trace."""
    random.seed(seed)
    np.random.seed(seed)  # MOASHA samples configurations from numpy's global generator
    blackbox.new_search()
    scheduler = make_scheduler(strategy, blackbox.configuration_space, epochs, seed, args)
    cap_trials(scheduler, args.trials)
    backend = UserBlackboxBackend(
        blackbox=blackbox, elapsed_time_attr="wall_seconds", tuner_sleep_time=args.poll
    )
    traced = TraceCallback()
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(max_num_trials_started=args.trials),
        n_workers=args.workers,
        sleep_time=0,
        callbacks=[SimulatorCallback(), traced],
        results_update_interval=1e9,
        print_update_interval=1e9,
        save_tuner=False,
        wait_trial_completion_when_stopping=True,
        tuner_name=f"{strategy}-{seed}",
        output_logger=Silent(),
    )
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        tuner.run()
    wall = time.perf_counter() - started
    return {"strategy": strategy, "seed": seed, "wall": wall, "trials": traced.trace(epochs)}


_WORKER: dict[str, Any] = {}


def _init(table_path: str, space_path: str | None, folder: str) -> None:
    os.environ["SYNETUNE_FOLDER"] = folder
    # One thread: scikit-learn's OpenMP threads cost ~40 ms per 1-NN lookup on a busy machine.
    threadpool_limits(1)
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    table = read_table(Path(table_path))
    params = read_space(table, Path(space_path) if space_path else None)
    _WORKER["blackbox"], _WORKER["left_out"] = build_blackbox(table, params)
    _WORKER["epochs"] = table.epochs


def _search(strategy: str, seed: int, args: Any) -> dict:
    return search(strategy, seed, _WORKER["blackbox"], _WORKER["epochs"], args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--space", type=Path, help="space tree JSON, if the table lacks one")
    parser.add_argument("--seeds", type=int, default=20, help="runs per strategy")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=200, help="trials per run")
    parser.add_argument("--workers", type=int, default=2, help="trials side by side")
    parser.add_argument("--strategies", nargs="*", default=list(DEFAULT_STRATEGIES))
    parser.add_argument("--grace-period", type=int, default=2)
    parser.add_argument("--reduction-factor", type=float, default=2)
    parser.add_argument(
        "--poll", type=float, default=0.1, help="simulated seconds the tuner waits when busy"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/syne_traces.json"))
    args = parser.parse_args()
    for strategy in args.strategies:
        if strategy not in STRATEGIES:
            raise SystemExit(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}")

    with tempfile.TemporaryDirectory(prefix="syne-peer-") as folder:  # Syne Tune's own files
        started = time.perf_counter()
        _init(str(args.table), args.space and str(args.space), folder)
        blackbox, epochs = _WORKER["blackbox"], _WORKER["epochs"]
        print(
            f"{args.table}: blackbox of {len(blackbox.rows)} rows x {epochs} epochs "
            f"(left out: {_WORKER['left_out']}), built in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        jobs = [
            (strategy, args.first_seed + i)
            for strategy in args.strategies
            for i in range(args.seeds)
        ]
        runs: list[dict] = []
        if args.jobs > 1:
            with ProcessPoolExecutor(
                max_workers=args.jobs,
                initializer=_init,
                initargs=(str(args.table), args.space and str(args.space), folder),
            ) as pool:
                futures = [pool.submit(_search, s, seed, args) for s, seed in jobs]
                for future in futures:
                    runs.append(future.result())
                    report(runs[-1])
        else:
            for strategy, seed in jobs:
                runs.append(_search(strategy, seed, args))
                report(runs[-1])
        total = time.perf_counter() - started

    labels = {s: STRATEGIES[s] for s in args.strategies}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"labels": labels, "runs": runs}))
    written = [args.out]
    for strategy in args.strategies:
        path = args.out.with_name(f"{args.out.stem}.{strategy}{args.out.suffix or '.json'}")
        path.write_text(json.dumps([r for r in runs if r["strategy"] == strategy]))
        written.append(path)
    walls = [r["wall"] for r in runs]
    print(
        f"{len(runs)} runs in {total:.1f} s (per run: mean {np.mean(walls):.2f} s, "
        f"max {np.max(walls):.2f} s); wrote {', '.join(map(str, written))}"
    )


def report(run: dict) -> None:
    trials = run["trials"]
    complete = sum(t["state"] == "COMPLETE" for t in trials)
    end = max((t["end"] for t in trials), default=0.0)
    best = max((r[2] for t in trials for r in t["reports"]), default=math.nan)
    print(
        f"{run['strategy']:<12} seed {run['seed']}: {len(trials)} trials "
        f"({complete} complete), simulated {end:,.0f} s, best val_accuracy {best:.4f}, "
        f"wall {run['wall']:.2f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
