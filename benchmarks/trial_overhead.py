"""Per-trial overhead of hpsearch's runner against the ideal, on the synthetic objective.

Each trial reports ``--epochs`` epochs of ``--sleep`` seconds and does nothing else, so any wall
time beyond ``trials * epochs * sleep / concurrency`` is scheduling, recording and process
overhead. anchors.md measured bare Ray Tune here at 2.0 s per trial without actor reuse and
0.13 s with it; hpsearch reuses actors and writes every epoch to SQLite.

    .venv/bin/python benchmarks/trial_overhead.py --trials 40 --epochs 5 --sleep 0.2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the synthetic study once and print wall time against the ideal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--bare", action="store_true", help="bare Ray Tune, for comparison")
    args = parser.parse_args()
    if args.bare:
        bare(args)
        return

    from hpsearch.cli import main as cli
    from hpsearch.simulate.xgamma import simulate_to_file

    work = Path(tempfile.mkdtemp(prefix="hpsearch-bench-"))
    os.chdir(work)
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
    started = time.monotonic()
    code = cli(["run", str(work / "study.yaml")])
    wall = time.monotonic() - started
    ideal = args.trials * args.epochs * args.sleep / args.concurrency
    print(
        f"exit {code}: {args.trials} trials x {args.epochs} epochs x {args.sleep} s, "
        f"{args.concurrency} at a time: wall {wall:.1f} s (Ray start included), "
        f"ideal {ideal:.1f} s, "
        f"overhead {(wall - ideal) / args.trials:.3f} s per trial"
    )
    if not os.environ.get("KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(work)


def bare(args: argparse.Namespace) -> None:
    """The same workload on bare Ray Tune: reused actors, FIFO, no searcher, no storage."""
    import ray
    from ray import tune

    def trainable(config: dict[str, float]) -> None:
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.sleep)
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
