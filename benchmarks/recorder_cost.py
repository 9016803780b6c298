"""What recording a trial costs the driver: the Recorder's storage work per trial, in-process.

``trial_overhead.py`` times whole runs against bare Ray Tune, and a whole run on a 2-core
machine varies by +-10% (Ray's start, the workers), which hides a few milliseconds per
trial. This times only what the driver does for each trial through the Recorder, the way
the driver does it: the budget look and the ask (``RecorderSearcher.suggest``), one report
per epoch (``record_epoch``) and the ending (``finish``), on the same SQLite storage and
synthetic study as ``trial_overhead.py``, with no Ray. Run it on two commits to see what a
change to the Recorder saves.

    .venv/bin/python benchmarks/recorder_cost.py --trials 100 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Ask, report and end ``--trials`` trials; print milliseconds per trial for each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="fresh studies; medians shown")
    args = parser.parse_args()
    runs = [measure(args) for _ in range(args.repeats)]
    for step in runs[0]:
        values = [run[step] for run in runs]
        print(
            f"{step:>8}: {statistics.median(values):6.2f} ms per trial "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )


def measure(args: argparse.Namespace) -> dict[str, float]:
    """One fresh study: milliseconds per trial spent in each step, and in all."""
    import optuna
    import trial_overhead

    from hpsearch.lifecycle import FailureStreak, RunStop, decide
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.runner._driver import RecorderSearcher, RunSummary
    from hpsearch.spec import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="hpsearch-recorder-"))
    here = Path.cwd()
    os.chdir(work)
    try:
        setup = argparse.Namespace(sleep=0.0, trials=args.trials, epochs=args.epochs)
        setup.concurrency = 2
        trial_overhead.hpsearch_command(work, setup)
        study = load_study(work / "study.yaml")
        recorder = Recorder(study, open_storage(study.spec.storage))
        summary = RunSummary()
        searcher = RecorderSearcher(
            recorder,
            summary,
            RunStop(FailureStreak(3)),
            remaining=args.trials,
            concurrency=2,
            budget=args.trials,
        )
        spent: dict[str, float] = defaultdict(float)
        for index in range(args.trials):
            started = time.perf_counter()
            config = searcher.suggest(f"trial_{index}")
            spent["ask"] += time.perf_counter() - started
            if not isinstance(config, dict):
                raise SystemExit(f"the searcher gave {config!r} for trial {index}")
            number = int(config["number"])
            last: dict[str, object] = {}
            for epoch in range(1, args.epochs + 1):
                last = {"epoch": epoch, "val_accuracy": 0.5 + epoch / 100, "train_seconds": 0.0}
                started = time.perf_counter()
                recorder.record_epoch(number, last)
                spent["epochs"] += time.perf_counter() - started
            last["complete"] = True
            outcome = decide(last, objectives=["val_accuracy"], epochs=args.epochs)
            started = time.perf_counter()
            recorder.finish(number, outcome, [last])
            spent["end"] += time.perf_counter() - started
            summary.outcomes[number] = outcome
        spent["all"] = sum(spent.values())
        return {step: 1000 * seconds / args.trials for step, seconds in spent.items()}
    finally:
        os.chdir(here)


if __name__ == "__main__":
    main()
