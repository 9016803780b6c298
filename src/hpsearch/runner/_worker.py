"""What runs inside a Ray worker process: one trial of the study's objective.

Ray reuses worker processes across trials (``reuse_actors``), so TensorFlow is imported (by
objectives that use it) once per process, configured through its environment, and each trial
only clears the Keras session it inherits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.objective import DataRef, TrialContext, TrialFailed, load_objective

#: Key under which a report carries exactly what the objective reported (Ray adds its own keys,
#: such as ``time_total_s`` and ``pid``, beside it at the top level).
REPORT_KEY = "hpsearch"

#: What the worker adds to every report about where the trial runs: its process, its Ray node
#: and host (and, on a GPU, the devices it sees). Stored with the trial as user attributes
#: from the last report; bookkeeping, not metrics, so kept out of the per-epoch history.
PLACEMENT_KEYS = ("worker_pid", "node", "hostname", "cuda_visible_devices")


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a study shares, sent once to each worker (``tune.with_parameters``).

    Attributes:
        objective_file: The objective: a module name, or an objective file's absolute path.
        data: Where the data is and how it is split.
        epochs: The full training budget of one trial.
        cpus: CPU cores per trial; TensorFlow's thread pools are sized to match.
        gpus: GPU share per trial; TensorFlow allocates GPU memory on demand when > 0.
        deterministic: Turn on TensorFlow's op determinism (``study.deterministic``).
        input_stats: The study's input normalisation, computed once on the training split.
        log_dir: Where each trial's own output goes, one file per trial (None: the worker's).
        shipped_objective: Where the objective is on a cluster node, when the driver sent it
            with the job (see :func:`hpsearch.runner._cluster.locate_objective`); None: import
            ``objective_file`` itself.
        model_dir: Where each COMPLETE trial saves its trained model (``keep_models``), or
            None to keep none.
    """

    objective_file: str
    data: DataRef
    epochs: int
    cpus: float
    gpus: float
    deterministic: bool = False
    input_stats: Mapping[str, Any] = field(default_factory=dict)
    log_dir: str | None = None
    shipped_objective: str | None = None
    model_dir: str | None = None


def tensorflow_env(cpus: float, gpus: float, *, deterministic: bool = False) -> dict[str, str]:
    """The environment TensorFlow reads when it starts in a worker, sized to one trial.

    Without it, two trials on two cores each start one thread per core and oversubscribe the
    machine, and a trial on a fractional GPU grabs the whole card (ray#13680). Set as
    environment variables (which TensorFlow reads when its runtime starts) rather than through
    ``tf.config`` calls, so that a worker imports TensorFlow only if its objective does: an
    objective without Keras pays no TensorFlow import, and one with Keras pays it once per
    reused worker process. With ``deterministic`` every op runs deterministically (or raises
    for an op that has no deterministic kernel), which is what makes GPU runs repeat.
    """
    threads = str(max(1, round(cpus)))
    env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads}
    if gpus > 0:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    if deterministic:
        env["TF_DETERMINISTIC_OPS"] = "1"
    return env


class ReportChannel:
    """``ctx.report`` in a Ray worker: sends each epoch to Tune and notes whether it completed.

    Tune adds its own keys to every result, so the objective's report travels unfiltered under
    :data:`REPORT_KEY`; the driver reads that and nothing else (filtering Tune's keys by the
    objective's ``METRICS`` once dropped ``train_seconds`` from objectives that did not list it).
    The scheduler's metric and ``epoch`` stay at the top level too, where the scheduler reads
    them. Each report also carries ``wall_seconds``, the trial's wall time since the channel
    opened (model building, validation and test passes included): the compute a trial really
    took, which ``train_seconds`` (training alone) leaves out and a replayed search's simulated
    clock advances by (see :mod:`hpsearch.curves`).

    Args:
        send: ``ray.tune.report`` (or any callable taking a dict, in tests).
        where: Where the trial runs (see :func:`placement`), added to every report.
    """

    def __init__(
        self, send: Callable[[dict[str, Any]], None], where: Mapping[str, Any] | None = None
    ) -> None:
        self._send = send
        self._where = dict(where or {})
        self.completed = False
        self.last_epoch = 0
        self._opened = time.monotonic()

    def __call__(self, metrics: Mapping[str, Any]) -> None:
        """Send one epoch's metrics."""
        own = {
            **metrics,
            "wall_seconds": time.monotonic() - self._opened,
            "worker_pid": os.getpid(),
            **self._where,
        }
        self.completed = self.completed or bool(metrics.get("complete"))
        self.last_epoch = int(metrics.get("epoch", self.last_epoch) or 0)
        self._send({**metrics, REPORT_KEY: own})

    def check_completed(self, epochs: int) -> None:
        """Fail a trial whose objective returned before reporting its last epoch.

        Raises:
            TrialFailed: The objective returned without a report marked ``complete``.
        """
        if not self.completed:
            raise TrialFailed(
                f"the objective returned after epoch {self.last_epoch} of {epochs} without "
                "reporting its last epoch with `complete=True`"
            )


@contextlib.contextmanager
def trial_output(path: Path | None) -> Iterator[None]:
    """Send the trial's own output (prints, warnings, TensorFlow's C++ log) to ``path``.

    The terminal shows one line per trial; what the objective printed stays readable in the
    trial's file (stored as its ``log_file`` attribute). Both Python's streams and the file
    descriptors are redirected, since TensorFlow writes to fd 2 directly; they are restored
    after the trial because Ray reuses the worker for the next one.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a", buffering=1, encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with (
                contextlib.redirect_stdout(log),
                contextlib.redirect_stderr(log),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("default")
                yield
        finally:
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def placement(gpus: float) -> dict[str, Any]:
    """Where this worker runs: its Ray node id and host, and the GPUs it sees when it has any.

    On a cluster the stored trial then says which machine trained it (where its log file is,
    which node was slow or failed); on a GPU, which device it shared with which trials.
    """
    import ray

    where: dict[str, Any] = {
        "node": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
    }
    if gpus > 0:
        where["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return where


def trial_log(log_dir: str | None, number: int) -> Path | None:
    """The trial's log file: in the run's folder, or a temporary one where that cannot be made.

    The run's folder is a path on the driver's machine; a cluster node may have no right to
    make it (another user, no such home). The trial must not fail for its log: its output then
    goes to the node's temporary folder (the stored ``hostname`` says which node).
    """
    if not log_dir:
        return None
    folder = Path(log_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        folder = Path(tempfile.gettempdir()) / "hpsearch_trial_logs" / folder.parent.name
    return folder / f"trial_{number:05d}.log"


def model_file(model_dir: str | None, number: int) -> Path | None:
    """Where the trial saves its model (``keep_models``), or None.

    None too when this node cannot write the driver's folder (a cluster node without the
    driver's disk): a model that cannot be kept must not fail the trial that trained it.
    """
    if not model_dir:
        return None
    from hpsearch.results.storage import model_path

    try:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return model_path(model_dir, number) if os.access(model_dir, os.W_OK) else None


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Ray Tune function trainable: train one trial, reporting each epoch to Tune."""
    with trial_output(trial_log(setup.log_dir, int(config["number"]))):
        _train(config, setup)


def _train(config: dict[str, Any], setup: TrialSetup) -> None:
    """Train one trial (inside :func:`trial_output`)."""
    from ray import tune

    os.environ.update(tensorflow_env(setup.cpus, setup.gpus, deterministic=setup.deterministic))
    # Tune reuses this worker for the next trial only if the last one's training thread ends
    # within this many seconds of being stopped (default 2). Ending a Keras fit can take
    # longer with a large model (seen: a 26 s/epoch ResNet), and a failed reuse errors the
    # next trial before it starts.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    if "keras" in sys.modules:  # a reused worker: drop the previous trial's models and graphs
        sys.modules["keras"].backend.clear_session()
    if setup.shipped_objective is not None:
        from hpsearch.runner._cluster import locate_objective

        objective = load_objective(locate_objective(setup.shipped_objective))
    else:
        objective = load_objective(setup.objective_file)
    channel = ReportChannel(tune.report, placement(setup.gpus))
    ctx = TrialContext(
        number=int(config["number"]),
        params=config["params"],
        seed=int(config["seed"]),
        epochs=setup.epochs,
        data=setup.data,
        cpus=setup.cpus,
        gpus=setup.gpus,
        input_stats=setup.input_stats,
        report=channel,
        save_model=model_file(setup.model_dir, int(config["number"])),
    )
    objective.train(ctx)
    channel.check_completed(setup.epochs)
