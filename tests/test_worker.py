"""A Ray worker sizes TensorFlow to its trial's cores, once per (reused) process."""

from __future__ import annotations

import subprocess
import sys


def test_tensorflow_threads_match_the_trial_cpus() -> None:
    code = (
        "import tensorflow as tf\n"
        "from hpsearch.runner._worker import configure_tensorflow\n"
        "configure_tensorflow(3, 0)\n"
        "configure_tensorflow(3, 0)  # a reused worker: no error on the second trial\n"
        "tf.constant(1.0) + 1.0  # the runtime starts with the configured pools\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["3", "3"]
