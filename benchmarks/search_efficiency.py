"""Search efficiency on replayed learning curves: hpsearch's default against what users run.

Every strategy searches the same recorded xgamma families table
(``benchmarks/curves/xgamma_families_16k.h5`` by default, see ``hpsearch curves record``)
through the real replay (``hpsearch run --replay``: the real searcher, scheduler and Recorder,
on a simulated clock, 2 trials side by side), once per seed, and is scored on three figures
with their spread over seeds:

* **compute to target**: simulated trial seconds (summed over all trials, the compute a user
  pays) until some trial first reports a validation accuracy at or above the target;
* **best at fixed compute**: the best validation accuracy reported once that much compute
  is spent;
* **hypervolume**: of the front of (validation accuracy, training seconds) of the trials
  completed by then (dominated area up to the reference point: the accuracy of the table's
  baseline, the rise-time cut, or 0.5 without one; 1.05x the table's slowest complete trial),
  as a fraction of the table's own front's hypervolume.

The defaults (20 seeds, 200 trials per search) finish in a few minutes on 2 cores; larger runs
by flag. The Markdown table goes to ``docs/`` (``--out``), the figure to ``figures/`` beside it::

    .venv/bin/python benchmarks/search_efficiency.py               # = make bench
    .venv/bin/python benchmarks/search_efficiency.py --seeds 50 --trials 240

Syne Tune's ASHA and MOASHA (through Syne Tune's own simulator backend, in a venv of their
own) join the table when ``--peers FILE`` names their traces (``benchmarks/syne_tune_peer.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "curves" / "xgamma_families_16k.h5"
STUDY = ROOT / "studies" / "xgamma_families.yaml"

#: A trial's trace: start, end, state, and each report as [time, epoch, val acc, train s].
Trace = dict[str, Any]

SINGLE = "objectives=[{metric: val_accuracy, direction: maximize}]"
TPE16 = "searcher={type: optuna-tpe, n_startup_trials: 16}"
TPE3 = "searcher={type: optuna-tpe, n_startup_trials: 3}"
NSGA2_20 = "searcher={type: optuna-nsga2, population_size: 20}"
NSGA2_10 = "searcher={type: optuna-nsga2, population_size: 10}"


@dataclass(frozen=True)
class Strategy:
    """One way to search: a searcher and a scheduler, as study overrides.

    Attributes:
        key: Short name (``--strategies``).
        label: What it stands for, in the table.
        overrides: ``--set`` overrides of the study.
        candidate: A would-be default, run only when named (``--strategies``): candidates that
            lead on the main seeds are run again on fresh ones (``--seed-base``) before one
            replaces the default, as the best of several noisy figures flatters itself.
    """

    key: str
    label: str
    overrides: tuple[str, ...]
    candidate: bool = False


STRATEGIES = (
    Strategy(
        "random",
        "random search, no early stopping (by hand; = Ray Tune's default random + FIFO)",
        ("searcher={type: random}", "scheduler={type: fifo}"),
    ),
    Strategy(
        "random-asha",
        "random + ASHA, Ray Tune's ASHA defaults (grace 1, reduction factor 4)",
        (
            "searcher={type: random}",
            "scheduler={type: asha, grace_period: 1, reduction_factor: 4}",
        ),
    ),
    Strategy(
        "random-asha2",
        "random + ASHA (grace 2, factor 2): like for like with Syne Tune's ASHA below",
        ("searcher={type: random}", "scheduler={type: asha, grace_period: 2, reduction_factor: 2}"),
    ),
    Strategy(
        "random-moasha",
        "random + hpsearch's MOASHA (grace 2, factor 2): like for like with Syne Tune's MOASHA",
        (
            "searcher={type: random}",
            "scheduler={type: moasha, grace_period: 2, reduction_factor: 2}",
        ),
    ),
    Strategy(
        "optuna-default",
        "Optuna's default: TPE (10 startup trials) + MedianPruner, on val_accuracy alone",
        (
            SINGLE,
            "searcher={type: optuna-tpe, n_startup_trials: 10}",
            "scheduler={type: optuna-median}",
        ),
    ),
    Strategy(
        "hyperopt",
        "hyperopt TPE (20 startup trials, its default), no early stopping, val_accuracy",
        (SINGLE, "searcher={type: hyperopt-tpe, n_startup_trials: 20}", "scheduler={type: fifo}"),
    ),
    Strategy(
        "tpe-asha",
        "multi-objective TPE + ASHA (grace 2, factor 2): hpsearch's first default",
        ("scheduler={type: asha, grace_period: 2, reduction_factor: 2}",),
    ),
    Strategy(
        "tpe-moasha",
        "multi-objective TPE + MOASHA (grace 2, factor 2): the default chosen on the 200-row table",
        ("scheduler={type: moasha, grace_period: 2, reduction_factor: 2}",),
    ),
    Strategy(
        "hpsearch",
        "hpsearch default (the study as shipped): multi-objective TPE + ASHA (grace 1, factor 4)",
        (),
    ),
    Strategy(
        "nsga2-asha",
        "NSGA-II (population 20) + ASHA (grace 2, factor 2)",
        (
            "searcher={type: optuna-nsga2, population_size: 20}",
            "scheduler={type: asha, grace_period: 2, reduction_factor: 2}",
        ),
    ),
    *(
        Strategy(
            key,
            f"{label} + {kind.upper()} (grace {grace}, factor {factor}"
            f"{', 3 brackets' if kind == 'hyperband' else ''})",
            (
                *searcher,
                f"scheduler={{type: {kind}, grace_period: {grace}, reduction_factor: {factor}}}",
            ),
            candidate=True,
        )
        for key, label, searcher, kind, grace, factor in (
            ("tpe-moasha-13", "multi-objective TPE", (), "moasha", 1, 3),
            ("tpe-moasha-14", "multi-objective TPE", (), "moasha", 1, 4),
            ("tpe16-moasha", "multi-objective TPE (16 startup trials)", (TPE16,), "moasha", 2, 2),
            ("nsga2-moasha", "NSGA-II (population 20)", (NSGA2_20,), "moasha", 2, 2),
            ("nsga2-moasha-13", "NSGA-II (population 20)", (NSGA2_20,), "moasha", 1, 3),
            ("nsga2-moasha-14", "NSGA-II (population 20)", (NSGA2_20,), "moasha", 1, 4),
            ("nsga2-10-moasha", "NSGA-II (population 10)", (NSGA2_10,), "moasha", 2, 2),
            ("random-moasha-14", "random", ("searcher={type: random}",), "moasha", 1, 4),
            ("tpe-asha-13", "multi-objective TPE", (), "asha", 1, 3),
            ("tpe16-asha", "multi-objective TPE (16 startup trials)", (TPE16,), "asha", 2, 2),
            ("nsga2-asha-13", "NSGA-II (population 20)", (NSGA2_20,), "asha", 1, 3),
            ("tpe3-asha-14", "multi-objective TPE (3 startup trials)", (TPE3,), "asha", 1, 4),
            ("tpe16-asha-14", "multi-objective TPE (16 startup trials)", (TPE16,), "asha", 1, 4),
            ("tpe-hyperband-13", "multi-objective TPE", (), "hyperband", 1, 3),
            ("tpe-hyperband-14", "multi-objective TPE", (), "hyperband", 1, 4),
        )
    ),
)


def replay(strategy: Strategy, seed: int, table_path: str, trials: int, workers: int) -> Trace:
    """One search of ``strategy`` with master seed ``seed``: its trace on the simulated clock."""
    import optuna
    from rich.console import Console

    from hpsearch.curves import CurveTable
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.runner._replay import replay_study
    from hpsearch.spec import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = CurveTable.read(table_path)
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as scratch:
        overrides = [
            f"name={strategy.key}-{seed}",
            f"seed={seed}",
            f"budget.trials={trials}",
            f"budget.epochs={table.epochs}",
            "budget.seconds=null",
            "enqueue=null",
            f"storage=sqlite:///{scratch}/bench.db",
            *strategy.overrides,
        ]
        study = load_study(STUDY, overrides)
        recorder = Recorder(study, open_storage(study.spec.storage))
        started = time.perf_counter()
        summary = replay_study(study, recorder, table, workers=workers, console=Console(quiet=True))
        wall = time.perf_counter() - started
    wall_at = table.metrics["wall_seconds"]
    accuracy = table.metrics["val_accuracy"]
    train = table.metrics["train_seconds"]
    traced = []
    for trial in summary.trials:
        reports = [
            [
                trial.started + float(wall_at[trial.row, e]),
                e + 1,
                float(accuracy[trial.row, e]),
                float(train[trial.row, e]),
            ]
            for e in range(trial.epochs)
        ]
        traced.append(
            {"start": trial.started, "end": trial.ended, "state": trial.state, "reports": reports}
        )
    return {"strategy": strategy.key, "seed": seed, "wall": wall, "trials": traced}


# -- scoring a trace ---------------------------------------------------------------------


def compute_at(trace: Trace, moment: float) -> float:
    """Trial seconds spent by simulated time ``moment``, all trials together."""
    return sum(max(0.0, min(moment, t["end"]) - t["start"]) for t in trace["trials"])


def moment_of(trace: Trace, compute: float) -> float:
    """The simulated time at which ``compute`` trial seconds have been spent (inf: never)."""
    times = sorted(
        {0.0, *(t["start"] for t in trace["trials"]), *(t["end"] for t in trace["trials"])}
    )
    before = 0.0
    for low, high in itertools.pairwise(times):
        spent = compute_at(trace, high)
        if spent >= compute:
            rate = (spent - before) / (high - low) if high > low else math.inf
            return low + (compute - before) / rate if rate > 0 else high
        before = spent
    return math.inf


def completions(trace: Trace, epochs: int) -> list[tuple[float, float, float]]:
    """(end, val accuracy, training seconds) of each trial that ran all epochs, by end.

    Only these count as results: a stopped trial's model is not kept, so what a user can
    take from a search is a completed trial's final model.
    """
    done = [
        (t["end"], t["reports"][-1][2], t["reports"][-1][3])
        for t in trace["trials"]
        if t["reports"] and t["reports"][-1][1] == epochs
    ]
    return sorted(done)


def compute_to_target(trace: Trace, target: float, epochs: int) -> float:
    """Compute spent when a completed trial first reaches ``target`` (inf: never)."""
    hits = [end for end, accuracy, _ in completions(trace, epochs) if accuracy >= target]
    return compute_at(trace, hits[0]) if hits else math.inf


def best_at(trace: Trace, compute: float, epochs: int) -> float:
    """The best final validation accuracy of the trials completed once ``compute`` is spent."""
    moment = moment_of(trace, compute)
    seen = [accuracy for end, accuracy, _ in completions(trace, epochs) if end <= moment]
    return max(seen) if seen else math.nan


def front_points(trace: Trace, moment: float, epochs: int) -> list[tuple[float, float]]:
    """(accuracy, training seconds) of the trials that completed all epochs by ``moment``."""
    return [(a, s) for end, a, s in completions(trace, epochs) if end <= moment]


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (accuracy up, seconds down) up to ``reference``."""
    floor_acc, ceiling_s = reference
    useful = sorted((s, a) for a, s in points if a > floor_acc and s < ceiling_s)
    area, best = 0.0, floor_acc
    for i, (seconds, acc) in enumerate(useful):
        best = max(best, acc)
        right = useful[i + 1][0] if i + 1 < len(useful) else ceiling_s
        area += (best - floor_acc) * (right - seconds)
    return area


# -- the table and the figure ------------------------------------------------------------


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """Median and interquartile range; inf counts as never reached."""
    array = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(array, [25, 50, 75], method="linear")
    return float(med), float(q1), float(q3)


def ahead(mine: Sequence[float], theirs: Sequence[float], *, lower: bool) -> tuple[float, float]:
    """How often ``mine`` beats ``theirs`` over all pairs of seeds, and how surely it differs.

    The first figure is the Vargha-Delaney A (ties count a half): 0.5 when neither is ahead,
    1.0 when every seed of one beats every seed of the other. The second is the two-sided
    p-value of A by a permutation test (seeded: the page regenerates identically), so that
    "worse" means worse beyond what the seeds' spread gives by chance. ``lower``: less is
    better (compute); never-reached counts as infinite, behind every reached value.
    """
    a_values = np.asarray(mine, dtype=float)
    b_values = np.asarray(theirs, dtype=float)
    sign = -1.0 if lower else 1.0

    def statistic(x: np.ndarray, y: np.ndarray) -> float:
        with np.errstate(invalid="ignore"):  # inf - inf: both never reached, a tie
            diff = np.nan_to_num(sign * (x[:, None] - y[None, :]), nan=0.0)
        return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))

    observed = statistic(a_values, b_values)
    pooled = np.concatenate([a_values, b_values])
    rng = np.random.default_rng(0)
    extreme = 0
    permutations = 2000
    for _ in range(permutations):
        order = rng.permutation(len(pooled))
        value = statistic(pooled[order[: len(a_values)]], pooled[order[len(a_values) :]])
        extreme += abs(value - 0.5) >= abs(observed - 0.5) - 1e-12
    return observed, (extreme + 1) / (permutations + 1)


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def fmt(value: float, digits: int = 0) -> str:
    return "never" if not math.isfinite(value) else f"{value:,.{digits}f}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--seed-base",
        type=int,
        default=1000,
        help="first master seed (another base: fresh seeds, to confirm a choice made on these)",
    )
    parser.add_argument("--trials", type=int, default=200, help="trials per search")
    parser.add_argument("--workers", type=int, default=2, help="trials side by side")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--strategies",
        nargs="*",
        default=[s.key for s in STRATEGIES if not s.candidate],
        help="default: all but the candidates ("
        + ", ".join(s.key for s in STRATEGIES if s.candidate)
        + ")",
    )
    parser.add_argument("--title", default="Search efficiency on replayed learning curves")
    parser.add_argument("--peers", type=Path, help="JSON traces of peers run elsewhere")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "search_efficiency.md")
    parser.add_argument(
        "--figure", type=Path, help="default: figures/<name of --out>.png beside --out"
    )
    parser.add_argument(
        "--traces", type=Path, help="default: results/bench/<name of --out>_traces.json"
    )
    parser.add_argument(
        "--from-traces",
        action="store_true",
        help="no replays: score the traces a previous run saved (--traces) again",
    )
    parser.add_argument("--elapsed", type=float, default=math.nan, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Named after the page, so that a trial run (--out elsewhere) leaves make bench's alone.
    if args.figure is None:
        args.figure = args.out.parent / "figures" / f"{args.out.stem}.png"
    if args.traces is None:
        args.traces = Path("results/bench") / f"{args.out.stem}_traces.json"
    return args


def main() -> None:
    """Replay every strategy over the seeds, score, and write the table and the figure."""
    args = parse_args()

    from hpsearch.curves import CurveTable

    table = CurveTable.read(args.table)
    if args.from_traces:
        saved = json.loads(args.traces.read_text())
        if isinstance(saved, list):  # written before labels and timing were saved with them
            labels = {s.key: s.label for s in STRATEGIES}
            if args.peers is not None:
                labels.update(json.loads(args.peers.read_text())["labels"])
            saved = {"traces": saved, "labels": labels, "elapsed": args.elapsed}
        report(table, saved["traces"], saved["labels"], args, saved["elapsed"])
        return
    chosen = [s for s in STRATEGIES if s.key in args.strategies]
    started = time.perf_counter()
    jobs = [(s, args.seed_base + i) for s in chosen for i in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(replay, s, seed, str(args.table), args.trials, args.workers)
            for s, seed in jobs
        ]
        traces = []
        for done, future in enumerate(futures, start=1):
            traces.append(future.result())
            if done % 20 == 0 or done == len(futures):
                print(f"{done}/{len(futures)} searches replayed", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    labels = {s.key: s.label for s in chosen}
    if args.peers is not None:
        peers = json.loads(args.peers.read_text())
        traces += peers["runs"]
        labels.update(peers["labels"])
    args.traces.parent.mkdir(parents=True, exist_ok=True)
    args.traces.write_text(json.dumps({"traces": traces, "labels": labels, "elapsed": elapsed}))
    report(table, traces, labels, args, elapsed)


#: Where the Syne Tune rows come from (on a page that has them).
SYNE_NOTE = (
    "- **Syne Tune** rows come from `benchmarks/syne_tune_peer.py` (syne-tune 0.16.0, its own "
    "venv): Syne Tune's ASHA and MOASHA with its random searcher on Syne Tune's simulator "
    "backend, over the same table (1-nearest-neighbour surrogate over one-hot and scaled "
    "parameters; a row answers once per search, as in hpsearch's replay), the same seeds, 2 "
    "workers, grace period 2, reduction factor 2. Syne Tune "
    "0.16.0's MOASHA reads the output of its non-dominated sort (trial indices, best first) as "
    "one priority per trial (`Bracket.on_result` in `syne_tune/optimizer/schedulers/asha.py`), "
    "so a trial is judged by the position of whichever trial sorts last: a trial that "
    "dominates its whole rung can be stopped. `syne-moasha` is MOASHA as shipped; "
    "`syne-moasha-rankfix` passes it a corrected ranking through its own "
    "`multiobjective_priority` argument."
)


def notes(table: Any, *, syne: bool, workers: int) -> list[str]:
    """What the table cannot say by itself, appended to the generated page."""
    names = {name for params in table.params for name in params}
    return [
        "",
        "## How to read it",
        "",
        REPLAY_NOTE.format(rows=table.rows, names=len(names), workers=workers),
        *([SYNE_NOTE] if syne else []),
        *NOTES,
    ]


REPLAY_NOTE = (
    "- **Replay, not training.** Every search ran through `hpsearch run --replay`: the real "
    "searcher, scheduler and Recorder, {workers} trials at a time on a simulated clock. A "
    "proposal is answered by the nearest recorded configuration that the search has not run "
    "yet (same model family, optimizer and LR schedule where the table has one): a row "
    "answers once per search, as a real search never trains the same configuration twice by "
    "chance. The trial is stored with that row's parameters, so the searcher learns each "
    "result with the configuration that produced it. There is no training noise beyond what "
    "each row recorded once, and the {rows} recorded points are sparse in a "
    "{names}-parameter conditional space, so a searcher that homes in on a region is "
    "answered by the nearest rows still unrun there. Model-based searchers (TPE, NSGA-II) "
    "lose some of their edge here, as everything between recorded points is flat."
)

NOTES = [
    "- **Ray Tune's default** is random search with FIFO (the first row); Ray Tune's ASHA "
    "defaults are grace period 1 and reduction factor 4, the setting hpsearch's default "
    "adopted.",
    "- The `hpsearch` row is the study as shipped (`studies/xgamma_families.yaml`): "
    "multi-objective TPE with 8 startup trials and ASHA on val_accuracy at grace period 1, "
    "reduction factor 4 (over 8 epochs: rungs at epochs 1 and 4); the other schedulers run at "
    "grace period 2, reduction factor 2 (rungs at epochs 2 and 4) unless the row says "
    "otherwise.",
    "- **Choosing the default.** Other searcher and scheduler settings (the script's "
    "candidates) were replayed on the main seeds (base 1000) "
    "([search_efficiency_exploration.md](search_efficiency_exploration.md)), and the leaders "
    "again on 40 fresh seeds (base 5000) "
    "([search_efficiency_candidates.md](search_efficiency_candidates.md)): under the same "
    "multi-objective TPE, every ASHA setting beat MOASHA (the default chosen earlier on the "
    "noisier 200-row table) on compute to the top 2% and on hypervolume. ASHA at grace 1, "
    "factor 4 (Ray Tune's own ASHA defaults) was at or near the front on every figure and "
    "became the default; TPE's startup trials (3, 8 or 16) made no difference beyond the "
    "seeds' spread, and Ray's asynchronous HyperBand over 3 brackets was behind ASHA's one "
    "on every median, though not beyond the seeds' spread.",
]


def report(
    table: Any,
    traces: list[Trace],
    labels: dict[str, str],
    args: argparse.Namespace,
    elapsed: float,
) -> None:
    """Score the traces and write the Markdown table and the figure."""
    epochs = table.epochs
    complete = [r for r in range(table.rows) if table.state[r] == "COMPLETE"]
    final_acc = table.metrics["val_accuracy"][complete, epochs - 1]
    final_s = table.metrics["train_seconds"][complete, epochs - 1]
    trial_seconds = [float(table.epoch_seconds(r).sum()) for r in complete]
    ordered = np.sort(final_acc)[::-1]
    # Two targets, fixed by the table alone: its top 5% and top 2% of configurations.
    targets = {
        share: float(ordered[max(0, math.ceil(share * len(ordered)) - 1)]) for share in (0.05, 0.02)
    }
    budget = 50 * statistics.mean(trial_seconds)  # 50 full trials' compute
    baseline = table.meta.get("baseline") or {}
    floor = float(baseline.get("value", 0.5))  # a network below the rise-time cut is worthless
    reference = (floor, float(final_s.max()) * 1.05)
    best_hv = hypervolume(list(zip(final_acc.tolist(), final_s.tolist(), strict=True)), reference)

    by: dict[str, list[Trace]] = {}
    for trace in traces:
        by.setdefault(trace["strategy"], []).append(trace)
    rows = []
    grid = np.geomspace(min(trial_seconds), 10 * budget, 60)
    curves: dict[str, dict[str, np.ndarray]] = {}
    for key, runs in by.items():
        to_target = {
            share: [compute_to_target(t, target, epochs) for t in runs]
            for share, target in targets.items()
        }
        best = [best_at(t, budget, epochs) for t in runs]
        hv = [
            hypervolume(front_points(t, moment_of(t, budget), epochs), reference) / best_hv
            for t in runs
        ]
        total = [compute_at(t, math.inf) for t in runs]
        rows.append((key, to_target, best, hv, total, len(runs)))
        curves[key] = {
            "best": np.array([[best_at(t, c, epochs) for c in grid] for t in runs]),
            "hv": np.array(
                [
                    [
                        hypervolume(front_points(t, moment_of(t, c), epochs), reference) / best_hv
                        for c in grid
                    ]
                    for t in runs
                ]
            ),
        }
    random_median = {
        share: next((quartiles(r[1][share])[0] for r in rows if r[0] == "random"), math.nan)
        for share in targets
    }
    defaults = [s.key for s in STRATEGIES if not s.candidate]
    made_by = " (`make bench`)" if args.strategies == defaults else ""
    named = "" if made_by else f" --strategies {' '.join(args.strategies)}"
    lines = [
        f"# {args.title}",
        "",
        f"Generated by `benchmarks/search_efficiency.py`{made_by} with `--seeds "
        f"{args.seeds} --seed-base {args.seed_base} --trials {args.trials} --workers "
        f"{args.workers}{named}`, from the table "
        f"`{_shown(args.table)}` ({table.rows} configurations x {epochs} epochs, recorded with "
        f"`{table.meta.get('command')}` on {table.meta.get('hardware')}). "
        f"Replaying all {len(traces)} searches took {elapsed:.0f} s of wall time.",
        "",
        "- A search's result is a trial that ran all its epochs (a stopped trial's model is not "
        "kept); compute is the trials' simulated wall seconds, summed over all trials.",
        f"- **Targets**: final validation accuracy >= {targets[0.05]:.4f} (the table's top 5% "
        f"of {len(complete)} configurations) and >= {targets[0.02]:.4f} (top 2%); its best is "
        f"{ordered[0]:.4f}.",
        f"- **Fixed compute**: {budget:,.0f} trial seconds, 50 full trials at the table's mean "
        f"({statistics.mean(trial_seconds):.1f} s per full trial).",
        f"- **Hypervolume** of (val_accuracy up, train_seconds down) of the completed trials, "
        f"from the reference point ({floor:.4f}, {reference[1]:.1f} s) (accuracy: the "
        f"{baseline.get('name', 'chance level')}), as a fraction of the whole table's "
        f"({best_hv:.3f}).",
        "- Median [25th-75th percentile] over seeds; `never`: not reached within the search's "
        "trials (counted as infinite in the median).",
        "",
        "| strategy | compute to top 5% (s) | vs random | compute to top 2% (s) | vs random | "
        "best val acc at fixed compute | hypervolume at fixed compute | total compute (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, to_target, best, hv, total, n in rows:
        cells = []
        for share in targets:
            med, q1, q3 = quartiles(to_target[share])
            reached = sum(math.isfinite(v) for v in to_target[share])
            ratio = random_median[share] / med if math.isfinite(med) else math.nan
            never = f", reached {reached}/{n}" if reached < n else ""
            cells.append(f"{fmt(med)} [{fmt(q1)}-{fmt(q3)}{never}]")
            cells.append("-" if not math.isfinite(ratio) else f"{ratio:.1f}x")
        bmed, bq1, bq3 = quartiles(best)
        hmed, hq1, hq3 = quartiles(hv)
        lines.append(
            f"| {labels.get(key, key)} | {' | '.join(cells)} | "
            f"{bmed:.4f} [{bq1:.4f}-{bq3:.4f}] | {hmed:.3f} [{hq1:.3f}-{hq3:.3f}] | "
            f"{quartiles(total)[0]:,.0f} |"
        )
    lines += against_default(rows, labels)
    # The page links its figure wherever --figure put it.
    link = Path(os.path.relpath(args.figure.resolve(), args.out.resolve().parent)).as_posix()
    lines += ["", f"![best accuracy and hypervolume against compute]({link})"]
    lines += notes(table, syne=any(key.startswith("syne") for key in by), workers=args.workers)
    lines += target_noise(table, complete, targets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figure(curves, grid, labels, args.figure, targets)


def against_default(rows: list[tuple], labels: dict[str, str]) -> list[str]:
    """Is the default worse than each other strategy, beyond the spread over seeds?"""
    default = next((row for row in rows if row[0] == "hpsearch"), None)
    if default is None:
        return []
    lines = [
        "",
        "**The default against each other strategy**, seed by seed: A is how often the "
        "default does better over all pairs of seeds (0.5: neither ahead; below 0.5: the "
        "other strategy ahead), p the chance of an A this far from 0.5 if the two were alike "
        "(permutation test).",
        "",
        "| strategy | to top 5%: A, p | to top 2%: A, p | hypervolume: A, p |",
        "|---|---|---|---|",
    ]
    _, own_target, _, own_hv, *_ = default
    for key, to_target, _, hv, *_ in rows:
        if key == "hpsearch":
            continue
        cells = [
            "{:.2f}, {:.3f}".format(*ahead(own_target[share], to_target[share], lower=True))
            for share in own_target
        ]
        cells.append("{:.2f}, {:.3f}".format(*ahead(own_hv, hv, lower=False)))
        lines.append(f"| {labels.get(key, key)} | {' | '.join(cells)} |")
    return lines


def target_noise(table: Any, complete: list[int], targets: dict[float, float]) -> list[str]:
    """How far apart the targets stand, in the validation set's own sampling noise.

    The recorded accuracies are each measured once on a finite validation set, so the table's
    top rows differ partly by luck. The binomial standard error at the target, and how many of
    the validation top rows are also the test set's top rows (another 1,200 events the search
    never sees), say how much of a target a searcher can learn, and how much is noise that
    only more draws find.
    """
    sizes = (table.meta.get("data") or {}).get("split_sizes") or {}
    if "val" not in sizes or "test_accuracy" not in table.metrics:
        return []
    epochs = table.epochs
    val = table.metrics["val_accuracy"][complete, epochs - 1]
    test = table.metrics["test_accuracy"][complete, epochs - 1]
    lines = ["", "## How far apart the targets are", ""]
    for share, target in targets.items():
        k = int(np.sum(val >= target))  # ties at the target included
        error = math.sqrt(target * (1 - target) / int(sizes["val"]))
        top_val = set(np.argsort(-val)[:k].tolist())
        top_test = set(np.argsort(-test)[:k].tolist())
        lines.append(
            f"- Top {share:.0%} ({k} rows, val_accuracy >= {target:.4f}): one standard error "
            f"of an accuracy measured on the {int(sizes['val']):,} validation events is "
            f"{error:.4f}, and the band from the target to the table's best "
            f"({float(val.max()):.4f}) is {(float(val.max()) - target) / error:.1f} of them; "
            f"{len(top_val & top_test)} of these {k} rows are also among the {k} best on the "
            "test events."
        )
    lines += headroom(table, complete, targets)
    lines.append(
        "- Where the band is about one standard error wide and the test events agree on few "
        "of its rows, reaching the target is largely a matter of finding the row that drew a "
        "lucky validation sample: a searcher can learn the good region, but within it only "
        "more draws find that row. A lead there comes from spending less per draw (early "
        "stopping) more than from modelling, and the seeds spread widely (the quartiles)."
    )
    return lines


def headroom(table: Any, complete: list[int], targets: dict[float, float]) -> list[str]:
    """How much compute any strategy could save at most, against random search, per target.

    Random search without early stopping draws rows until one reaches the target. Were every
    row equally likely (and, as in the replay, each run once), a row that misses comes before
    the first of the ``k`` that reach it with probability 1 / (k + 1), so the search pays on
    average the missing rows' summed cost / (k + 1) plus one reaching row's mean cost. No
    strategy pays less than the cheapest reaching row's full training, so the ratio of the
    two bounds what there is to win; whether a searcher can find that row is the noise
    question above.
    """
    epochs = table.epochs
    val = table.metrics["val_accuracy"][complete, epochs - 1]
    cost = np.array([float(table.epoch_seconds(r).sum()) for r in complete])
    lines = []
    for share, target in targets.items():
        hit = val >= target
        k = int(hit.sum())
        expected = float(cost[~hit].sum()) / (k + 1) + float(cost[hit].mean())
        cheapest = float(cost[hit].min())
        others = ", ".join(f"{c:.0f}" for c in sorted(cost[hit])[1:])
        lines.append(
            f"- Top {share:.0%}: random search pays {expected:,.0f} s on average if every row "
            f"is equally likely and runs once; the cheapest of the {k} rows at the target "
            f"trains in {cheapest:.1f} s (the others: {others} s), so at most "
            f"{expected / cheapest:.0f}x is there to win."
        )
    return lines


def figure(
    curves: dict[str, dict[str, np.ndarray]],
    grid: np.ndarray,
    labels: dict[str, str],
    path: Path,
    targets: dict[float, float],
) -> None:
    """Median (and interquartile band) of best accuracy and hypervolume against compute."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("best validation accuracy", "hypervolume (fraction of the table's)"),
    )
    for i, (key, curve) in enumerate(curves.items()):
        color = qualitative.Dark24[i % len(qualitative.Dark24)]
        for col, name in ((1, "best"), (2, "hv")):
            values = curve[name]
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no result yet: NaN
                # A seed with no completed trial yet has no best: drawn once most seeds have one.
                values = np.where(np.isnan(values), -np.inf, values)
                med = np.median(values, axis=0)
                q1, q3 = np.percentile(values, [25, 75], axis=0)
                med, q1, q3 = (np.where(np.isfinite(v), v, np.nan) for v in (med, q1, q3))
            x = grid / 3600
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([x, x[::-1]]),
                    y=np.concatenate([q3, q1[::-1]]),
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=med,
                    name=key,
                    legendgroup=key,
                    showlegend=col == 1,
                    line={"color": color},
                    hovertext=labels.get(key, key),
                ),
                row=1,
                col=col,
            )
    for share, target in targets.items():
        fig.add_hline(y=target, line_dash="dot", row=1, col=1, annotation_text=f"top {share:.0%}")
    fig.update_xaxes(title_text="compute (trial hours, simulated)", type="log")
    fig.update_yaxes(range=[0.8, None], row=1, col=1)
    # Tall enough for one legend entry per strategy (plotly cuts a longer legend off).
    height = max(520, 160 + 30 * len(curves))
    fig.update_layout(width=1300, height=height, template="plotly_white")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_image(path)


if __name__ == "__main__":
    main()
