"""Does a trial repeat? The same xgamma trial trained in fresh processes, compared bit for bit.

Each repeat is a new Python process (as a new Ray worker would be) whose environment configures
TensorFlow as hpsearch's worker does (``tensorflow_env``: threads = the trial's CPUs, optional op
determinism), trains one fixed configuration of ``objectives/xgamma.py`` with the same seed and
prints its last report. The script prints whether the metrics of all repeats are identical and
the wall time per repeat, with and without ``deterministic``:

    .venv/bin/python benchmarks/determinism.py --events 3000 --epochs 3 --repeats 3 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARAMS = {
    "blocks": 2,
    "filters": 16,
    "kernel_size": 5,
    "downsample": 2,
    "norm": "group",
    "dropout": 0.2,
    "l2": 1e-4,
    "noise_std": 0.05,
    "batch_size": 64,
    "optimizer": {"name": "adam", "learning_rate": 3e-3, "decay_rate": 0.8, "decay_steps": 500},
}

CHILD = """
import json, sys, time
from hpsearch.objective import DataRef, TrialContext, load_objective
from hpsearch.seeding import derive_seed
reports = []
data = DataRef.from_file(path={path!r}, x_key="waveforms", y_key="labels",
                         fractions=(0.7, 0.15, 0.15), block_size=32,
                         split_seed=derive_seed(1, "split"))
ctx = TrialContext(number=0, params={params!r}, seed=7, epochs={epochs}, data=data,
                   cpus={threads}, report=reports.append)
started = time.perf_counter()
load_objective({objective!r}).train(ctx)
last = reports[-1]
print(json.dumps({{"seconds": time.perf_counter() - started,
                   "metrics": {{k: last[k] for k in ("loss", "val_loss", "val_accuracy",
                                                     "test_accuracy")}}}}))
"""


def repeat(path: Path, args: argparse.Namespace, threads: int, deterministic: bool) -> None:
    """Train the trial ``args.repeats`` times in fresh processes and compare the results."""
    from hpsearch.runner._worker import tensorflow_env

    code = CHILD.format(
        threads=threads,
        path=str(path),
        params=PARAMS,
        epochs=args.epochs,
        objective=str(ROOT / "objectives" / "xgamma.py"),
    )
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                **tensorflow_env(threads, 0, deterministic=deterministic),
            },
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    metrics = [json.dumps(run["metrics"], sort_keys=True) for run in runs]
    seconds = [run["seconds"] for run in runs]
    print(
        f"threads {threads}, deterministic {deterministic!s:5}: "
        f"{'identical' if len(set(metrics)) == 1 else 'DIFFERENT'} over {args.repeats} runs, "
        f"median {statistics.median(seconds):.1f} s per trial; "
        + " | ".join(
            f"val_acc {run['metrics']['val_accuracy']:.6f} loss {run['metrics']['loss']:.8f}"
            for run in runs
        )
    )


def main() -> None:
    """Simulate a small file once, then repeat the trial for each setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from hpsearch.simulate.xgamma import simulate_to_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "xgamma.h5"
        simulate_to_file(path, args.events, seed=1, progress=False)
        for threads in args.threads:
            for deterministic in (False, True):
                repeat(path, args, threads, deterministic)


if __name__ == "__main__":
    main()
