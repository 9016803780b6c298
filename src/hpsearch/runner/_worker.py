"""What runs inside a Ray worker process: one trial of the study's objective.

Ray reuses worker processes across trials (``reuse_actors``), so TensorFlow is imported and
configured once per process, and each trial only clears the Keras session it inherits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpsearch.objective import DataRef, TrialContext, load_objective

_configured_threads: int | None = None


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares, sent once to each worker (``tune.with_parameters``).

    Attributes:
        objective_file: Absolute path of the objective file.
        data: Where the data is and how it is split.
        epochs: The full training budget of one trial.
        cpus: CPU cores per trial; TensorFlow's thread pools are sized to match.
        gpus: GPU share per trial; TensorFlow allocates GPU memory on demand when > 0.
    """

    objective_file: str
    data: DataRef
    epochs: int
    cpus: float
    gpus: float


def configure_tensorflow(cpus: float, gpus: float) -> None:
    """Size TensorFlow's thread pools to the trial's cores and let GPU memory grow.

    Without this, two trials on two cores each start one thread per core and oversubscribe
    the machine, and a trial on a fractional GPU grabs the whole card (ray#13680).
    """
    global _configured_threads
    threads = max(1, round(cpus))
    if _configured_threads is not None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if gpus > 0:
        for device in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(device, True)
    _configured_threads = threads


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Ray Tune function trainable: train one trial, reporting each epoch to Tune."""
    from ray import tune

    configure_tensorflow(setup.cpus, setup.gpus)
    import keras

    keras.backend.clear_session()
    objective = load_objective(setup.objective_file)
    ctx = TrialContext(
        number=int(config["number"]),
        params=config["params"],
        seed=int(config["seed"]),
        epochs=setup.epochs,
        data=setup.data,
        cpus=setup.cpus,
        gpus=setup.gpus,
        report=tune.report,
    )
    objective.train(ctx)
