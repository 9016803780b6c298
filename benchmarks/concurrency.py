"""Throughput of real xgamma trials, one at a time against several side by side.

Identical trials (one fixed ResNet configuration; only dropout, which costs nothing, is
searched) train with ``resources.max_concurrent`` 1, then N (default 2, one CPU core each), so
that no trial is left running alone at the end for being longer than the others; throughput
is trials per second of the span from the first trial's start to the last one's end, as
stored. On a 2-core machine two trials at once should come close to twice the throughput of
one: each trial's TensorFlow is sized to its one core (``TF_NUM_INTRAOP_THREADS``), so the
two do not fight over threads.

    .venv/bin/python benchmarks/concurrency.py --trials 8 --epochs 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: One ResNet, the same in every trial: dropout, the one searched value, changes no cost.
FIXED = """\
family: resnet1d
params:
  blocks: 2
  filters: 16
  kernel_size: 5
  downsample: 2
  norm: group
  dropout: {type: float, low: 0.0, high: 0.01}
  l2: 1.0e-4
  noise_std: 0.1
  batch_size: 64
  optimizer: {name: adam, learning_rate: 1.0e-3, decay_rate: 0.9, decay_steps: 1000}
"""


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
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "xgamma_resnet.yaml")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hpsearch-concurrency-"))
    space = work / "fixed.yaml"
    space.write_text(FIXED)
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
            *("--set", f"data.simulate.events={args.events}", "--set", f"space={space}"),
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
