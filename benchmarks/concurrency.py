"""Throughput of real xgamma trials, one at a time against several side by side.

Identical trials (one fixed ResNet configuration; only dropout, which costs nothing, is
searched) train with ``resources.max_concurrent`` 1, then N (default 2, one CPU core each), so
that no trial is left running alone at the end for being longer than the others; throughput
is trials per second of the span from the first trial's start to the last one's end, as
stored. On a 2-core machine two trials at once should come close to twice the throughput of
one: each trial's TensorFlow is sized to its one core (``TF_NUM_INTRAOP_THREADS``), so the
two do not fight over threads. It also says where a shortfall goes: the trials' own time
side by side against alone (compute slowed by shared caches, memory bandwidth or the host),
and how much of the span the slots were busy (time lost between trials).

    .venv/bin/python benchmarks/concurrency.py --trials 8 --epochs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Span:
    """One run's trials as stored.

    Attributes:
        seconds: From the first trial's start to the last one's end.
        complete: COMPLETE trials.
        trial_seconds: The trials' own wall times (start to end), summed.
        train_seconds: Median seconds in Keras ``fit`` per trial (the worker's own clock).
    """

    seconds: float
    complete: int
    trial_seconds: float
    train_seconds: float


def span(storage: str, name: str) -> Span:
    """The run's span, its trials' own time and their median training time."""
    import optuna

    trials = optuna.load_study(study_name=name, storage=storage).trials
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    own = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_start and t.datetime_complete
    )
    train = statistics.median(
        float(t.user_attrs["train_seconds"]) for t in trials if "train_seconds" in t.user_attrs
    )
    return Span((max(ends) - min(starts)).total_seconds(), complete, own, train)


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
    runs: dict[int, Span] = {}
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
        run = span(storage, name)
        busy = run.trial_seconds / concurrency / run.seconds
        rates[concurrency] = run.complete / run.seconds
        runs[concurrency] = run
        print(
            f"{concurrency} at a time: {run.complete} trials in {run.seconds:.1f} s, "
            f"{3600 * rates[concurrency]:.0f} trials/hour; the trials' own time "
            f"{run.trial_seconds:.1f} s (slots busy {busy:.0%} of the span), median training "
            f"{run.train_seconds:.2f} s per trial"
        )
    n = args.concurrency
    print(f"throughput {n} at a time / 1 at a time: {rates[n] / rates[1]:.2f}x")
    # Where a shortfall from n x goes: each trial's own compute slowing down side by side
    # (shared caches, memory bandwidth, the host), or slots left idle between trials.
    slower = runs[n].trial_seconds / runs[1].trial_seconds
    print(
        f"side by side each trial took {slower:.2f}x its time alone (training "
        f"{runs[n].train_seconds / runs[1].train_seconds:.2f}x); with no time lost between "
        f"trials, {n} at a time would reach {n / slower:.2f}x"
    )


if __name__ == "__main__":
    main()
