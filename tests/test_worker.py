"""What a Ray worker does around the objective: TensorFlow's set-up, and the report channel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpsearch.objective import TrialFailed
from hpsearch.runner._worker import REPORT_KEY, ReportChannel, tensorflow_env

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
    )
    return result.stdout.strip().splitlines()[-1]


def test_tensorflow_threads_match_the_trial_cpus() -> None:
    """The thread pools TensorFlow starts grow with the trial's CPUs (intra- and inter-op)."""
    code = (
        "import os, tensorflow as tf\n"
        "tf.linalg.matmul(tf.ones((64, 64)), tf.ones((64, 64))).numpy()\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    one = int(_python(code, tensorflow_env(1, 0)))
    six = int(_python(code, tensorflow_env(6, 0)))
    assert six - one >= 2 * 5, (one, six)


def test_deterministic_turns_on_op_determinism_and_gpus_grow_memory() -> None:
    code = (
        "from tensorflow.python.framework import config\n"
        "print(config.is_op_determinism_enabled())\n"
    )
    assert _python(code, tensorflow_env(1, 0, deterministic=True)) == "True"
    assert _python(code, tensorflow_env(1, 0)) == "False"
    assert tensorflow_env(1, 0.5)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in tensorflow_env(1, 0)


def test_a_trial_repeats_bit_for_bit_in_a_reused_worker(xgamma_file: Path) -> None:
    """The README's claim: same parameters, seed, data and CPUs give the same numbers, whether
    the worker is fresh or ran another trial before (Keras session cleared as run_trial does)."""
    code = f"""
import json, keras
from hpsearch.objective import DataRef, TrialContext, load_objective
data = DataRef.from_file(path={str(xgamma_file)!r}, x_key="waveforms", y_key="labels",
               fractions=(0.7, 0.15, 0.15), block_size=32, split_seed=5)
base = dict(blocks=1, filters=8, kernel_size=3, downsample=4, dropout=0.1, l2=1e-4,
            noise_std=0.05, batch_size=32,
            optimizer=dict(learning_rate=3e-3, decay_rate=0.9, decay_steps=300))
other = dict(base, filters=16, dropout=0.3)
out = []
for params in (base, other, base):
    keras.backend.clear_session()
    reports = []
    ctx = TrialContext(number=0, params=params, seed=7, epochs=2, data=data,
                       report=reports.append)
    load_objective({str(ROOT / "objectives" / "xgamma.py")!r}).train(ctx)
    out.append([reports[-1][k] for k in ("loss", "val_loss", "test_loss")])
print(json.dumps(out))
"""
    first, other, again = json.loads(_python(code, tensorflow_env(1, 0)))
    assert first == again  # exactly: floats compared bit for bit
    assert first != other


def test_report_channel_sends_what_the_objective_reported_and_notes_completion() -> None:
    sent: list[dict[str, object]] = []
    channel = ReportChannel(sent.append)
    channel({"epoch": 1, "val_accuracy": 0.5, "anything": 3})
    with pytest.raises(TrialFailed, match="returned after epoch 1 of 2"):
        channel.check_completed(2)
    channel({"epoch": 2, "val_accuracy": 0.6, "train_seconds": 2.0, "complete": True})
    channel.check_completed(2)
    assert sent[0]["val_accuracy"] == 0.5  # the scheduler reads the top level
    own = sent[1][REPORT_KEY]
    assert isinstance(own, dict)
    assert own["train_seconds"] == 2.0 and own["complete"] is True and "worker_pid" in own
