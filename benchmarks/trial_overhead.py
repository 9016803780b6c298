"""Per-trial overhead of hpsearch's runner against bare Ray Tune, on the synthetic objective.

Each trial reports ``--epochs`` epochs of ``--sleep`` seconds and does nothing else, so any wall
time beyond ``trials * epochs * sleep / concurrency`` is scheduling, recording and process
overhead. Both run in a fresh process each: ``hpsearch run`` itself (random searcher, FIFO,
SQLite storage, reused actors) and a bare Tune loop with the same trainable, reused actors,
FIFO, no searcher and no storage, with the two Tune settings hpsearch sets (no per-trial CSV,
JSON and TensorBoard loggers; as many pending trials as slots), so that the difference is
what hpsearch adds. Wall time runs from process start to exit (Python imports and Ray's start
included in both); "first report" is when epoch 1 of the first trial arrived.

    .venv/bin/python benchmarks/trial_overhead.py --trials 100 --sleep 0      # no-op trainable
    .venv/bin/python benchmarks/trial_overhead.py --trials 100 --sleep 0.2    # ~1 s trainable

Each is run ``--repeats`` times (5), in turns; the figures are medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the synthetic study under hpsearch and bare Ray Tune, each in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per epoch (0: no-op)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--mode",
        choices=("both", "hpsearch", "bare", "inside-bare"),
        default="both",
        help="what to run",
    )
    parser.add_argument("--bare", action="store_true", help="same as --mode bare")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each, taken in turns")
    args = parser.parse_args()
    if args.bare:
        args.mode = "bare"
    if args.mode == "inside-bare":
        bare(args)
        return
    modes = ("hpsearch", "bare") if args.mode == "both" else (args.mode,)
    ideal = args.trials * args.epochs * args.sleep / args.concurrency
    # Taken in turns, so that a slow spell of the machine hits both alike; medians, as one
    # run of either varies by +-10% on a 2-core machine.
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode in modes:
            runs[mode].append(measure(mode, args))
    for mode, taken in runs.items():
        wall = statistics.median(w for w, _ in taken)
        first = statistics.median(f for _, f in taken)
        print(
            f"{mode:>8}: {args.trials} trials x {args.epochs} epochs x {args.sleep} s, "
            f"{args.concurrency} at a time: wall {wall:.1f} s (median of "
            f"{', '.join(f'{w:.1f}' for w, _ in taken)}; process start to exit), ideal "
            f"{ideal:.1f} s, overhead {(wall - ideal) / args.trials:.3f} s per trial; first "
            f"report {first:.1f} s after the start"
        )
    if len(runs) == 2:
        ours = [w for w, _ in runs["hpsearch"]]
        theirs = [w for w, _ in runs["bare"]]
        ratio = statistics.median(ours) / statistics.median(theirs)
        low, high = ratio_interval(ours, theirs)
        print(
            f"hpsearch / bare Ray Tune wall time (medians): {ratio:.3f}x, 95% interval "
            f"[{low:.3f}, {high:.3f}] (bootstrap over the {args.repeats} turns)"
        )


def ratio_interval(
    ours: list[float], theirs: list[float], draws: int = 5000
) -> tuple[float, float]:
    """A 95% bootstrap interval of the ratio of median wall times.

    Whole runs on this 2-core VM vary by 10% and more from one to the next, so five runs of each
    cannot tell 1.05x from 1.15x; the interval says how far a ratio can be trusted. The turns
    are resampled in pairs, as each pair ran back to back in the same spell of the machine.
    """
    import numpy as np

    pairs = np.array([ours, theirs])
    rng = np.random.default_rng(0)
    picks = rng.integers(0, pairs.shape[1], size=(draws, pairs.shape[1]))
    ratios = np.median(pairs[0][picks], axis=1) / np.median(pairs[1][picks], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def measure(mode: str, args: argparse.Namespace) -> tuple[float, float]:
    """Wall seconds of one run in a fresh process, and seconds to its first report."""
    work = Path(tempfile.mkdtemp(prefix="hpsearch-bench-"))
    try:
        env = dict(os.environ)
        if mode == "hpsearch":
            command = hpsearch_command(work, args)
        else:
            command = [
                sys.executable,
                __file__,
                "--mode",
                "inside-bare",
                *(f"--{k}={getattr(args, k)}" for k in ("trials", "epochs", "sleep")),
                f"--concurrency={args.concurrency}",
            ]
            env |= {
                "HPSEARCH_BENCH_DIR": str(work),
                "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                "TUNE_MAX_PENDING_TRIALS_PG": str(args.concurrency),
            }
        started = time.time()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{mode} run failed (exit {done.returncode}):\n{done.stderr}")
        wall = time.time() - started
        return wall, first_report(work, mode) - started
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def hpsearch_command(work: Path, args: argparse.Namespace) -> list[str]:
    """Write the synthetic study into ``work``; the ``hpsearch run`` that runs it."""
    from hpsearch.simulate.xgamma import simulate_to_file

    (work / "objectives").mkdir()
    (work / "search_spaces").mkdir()
    shutil.copy(ROOT / "tests" / "objectives" / "synthetic.py", work / "objectives")
    (work / "search_spaces" / "synthetic.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 1.0}\n"
        f"  fail_on: -1\n  sleep: {args.sleep}\n"
    )
    simulate_to_file(work / "data.h5", 200, seed=0, progress=False)
    study = {
        "name": "overhead",
        "task": "synthetic",
        "space": "search_spaces/synthetic.yaml",
        "seed": 0,
        "data": {"path": str(work / "data.h5")},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "searcher": {"type": "random"},
        "scheduler": {"type": "fifo"},
        "budget": {"trials": args.trials, "epochs": args.epochs},
        "resources": {"cpus_per_trial": 1, "max_concurrent": args.concurrency},
        "storage": f"sqlite:///{work}/bench.db",
    }
    (work / "study.yaml").write_text(yaml.safe_dump(study))
    return [str(Path(sys.executable).parent / "hpsearch"), "run", str(work / "study.yaml")]


def first_report(work: Path, mode: str) -> float:
    """When the first report of the run arrived (epoch 1 of its first trial), epoch seconds."""
    if mode == "bare":
        return min(float(line) for line in (work / "first.txt").read_text().split())
    import optuna

    from hpsearch.results.storage import trial_history

    study = optuna.load_study(study_name="overhead", storage=f"sqlite:///{work}/bench.db")
    return min(trial_history(t)[0]["trained_to"] for t in study.trials if trial_history(t))


def bare(args: argparse.Namespace) -> None:
    """The same workload on bare Ray Tune: reused actors, FIFO, no searcher, no storage."""
    import ray
    from ray import tune

    first = Path(os.environ["HPSEARCH_BENCH_DIR"]) / "first.txt"

    def trainable(config: dict[str, float]) -> None:
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.sleep)
            if epoch == 1:
                with open(first, "a") as file:
                    file.write(f"{time.time()}\n")
            tune.report({"epoch": epoch, "val_accuracy": config["x"]})

    started = time.monotonic()
    ray.init(include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            num_samples=args.trials, max_concurrent_trials=args.concurrency, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0),
    )
    tuner.fit()
    ray.shutdown()
    wall = time.monotonic() - started
    ideal = args.trials * args.epochs * args.sleep / args.concurrency
    print(
        f"bare Ray Tune: {args.trials} trials: wall {wall:.1f} s (Ray start included), "
        f"ideal {ideal:.1f} s, overhead {(wall - ideal) / args.trials:.3f} s per trial"
    )


if __name__ == "__main__":
    main()
