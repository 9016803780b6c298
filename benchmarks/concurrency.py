"""Throughput of real xgamma trials, one at a time against several side by side.

The same trials (random searcher, one seed, so trial N has the same parameters in every run)
train with ``resources.max_concurrent`` 1, then N (default 2, one CPU core each); throughput
is trials per second of the span from the first trial's start to the last one's end, as
stored. On a 2-core machine two trials at once should come close to twice the throughput of
one: each trial's TensorFlow is sized to its one core (``TF_NUM_INTRAOP_THREADS``), so the
two do not fight over threads.

    .venv/bin/python benchmarks/concurrency.py --trials 6 --epochs 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def span(storage: str, name: str) -> tuple[float, int]:
    """Seconds from the first trial's start to the last one's end, and COMPLETE trials."""
    import optuna

    trials = optuna.load_study(study_name=name, storage=storage).trials
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    return (max(ends) - min(starts)).total_seconds(), complete


def main() -> None:
    """Run the study at each concurrency and print the throughputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "xgamma_resnet.yaml")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hpsearch-concurrency-"))
    storage = f"sqlite:///{work}/bench.db"
    rates = {}
    for concurrency in (1, args.concurrency):
        name = f"concurrency-{concurrency}"
        command = [
            str(Path(sys.executable).parent / "hpsearch"),
            "run",
            str(args.study),
            "--storage",
            storage,
            *("--set", f"name={name}", "--set", "searcher={type: random}"),
            *("--set", "scheduler={type: fifo}", "--set", "enqueue=null"),
            *("--set", f"budget.trials={args.trials}", "--set", f"budget.epochs={args.epochs}"),
            *("--set", f"data.simulate.events={args.events}"),
            *("--set", f"data.path={work}/xgamma.h5", "--set", f"results_dir={work}/results"),
            *("--set", f"resources={{cpus_per_trial: 1, max_concurrent: {concurrency}}}"),
        ]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        seconds, complete = span(storage, name)
        rates[concurrency] = complete / seconds
        print(
            f"{concurrency} at a time: {complete} trials in {seconds:.1f} s, "
            f"{3600 * rates[concurrency]:.0f} trials/hour"
        )
    print(
        f"throughput {args.concurrency} at a time / 1 at a time: "
        f"{rates[args.concurrency] / rates[1]:.2f}x"
    )


if __name__ == "__main__":
    main()
