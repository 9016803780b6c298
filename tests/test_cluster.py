"""Trials on a real Ray cluster, and trials packed on shared GPUs, asserted from storage.

The cluster is two nodes of this machine started as on any cluster (``ray start --head``, then
``ray start --address``), one CPU each, so two trials at a time must use both. The second node
starts in a mount namespace of its own where one folder is an empty tmpfs: a file the driver
(and the head) read there is missing on that node, as data missing on one machine of a real
cluster is. Ray schedules GPUs as plain counted resources, so GPU packing is tested without a
GPU on logical GPUs declared to Ray; what is asserted is measured inside the trials (when they
trained, which device Ray gave their process), not read back from the study's settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import pytest
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.errors import InputError
from hpsearch.objective import TrialFailed
from hpsearch.results.storage import trial_history
from hpsearch.runner import _cluster
from synthetic_runs import peak_overlap, stored_trials, training_interval, write_space

pytestmark = pytest.mark.e2e

OBJECTIVES = Path(__file__).resolve().parent / "objectives"
RAY = Path(sys.executable).with_name("ray")
HPSEARCH = Path(sys.executable).with_name("hpsearch")
#: The cluster's processes and its drivers run without Ray's token authentication. Set for
#: every process that touches the cluster: a process in token mode (any process that once
#: started local Ray, as this test session does) refuses the calls of a cluster without it.
AUTH_OFF = {"RAY_AUTH_MODE": "disabled"}

#: Prints the alive nodes (id -> resources) once there are at least argv[2] of them.
_WAIT_FOR_NODES = """
import json, sys, time, ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False,
         logging_level="ERROR")
deadline = time.monotonic() + 60
while True:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) >= int(sys.argv[2]) or time.monotonic() > deadline:
        break
    time.sleep(0.3)
print(json.dumps({n["NodeID"]: n["Resources"] for n in nodes}))
"""


# --------------------------------------------------------------------------------------------
# helpers


def _hpsearch(*args: str) -> subprocess.CompletedProcess[str]:
    """``hpsearch ARGS`` in a process of its own, as a user runs it against a cluster.

    Not ``main()`` in this process: Ray keeps a process's authentication mode once set, and a
    test before this one may have started local Ray here, in token mode.
    """
    env = {**os.environ, **AUTH_OFF, "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [str(HPSEARCH), *args], env=env, capture_output=True, text=True, timeout=150
    )


def _placed_objective() -> None:
    """The objective that reports where it ran, into the scratch project's objectives/."""
    shutil.copy(OBJECTIVES / "placed.py", Path("objectives") / "placed.py")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _can_hide(folder: Path) -> bool:
    """Whether a process here can get a mount namespace with an empty tmpfs over ``folder``."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs"]
    return subprocess.run([*probe, str(folder)], capture_output=True).returncode == 0


def _alive_in_sessions(sessions: set[int]) -> list[int]:
    """Live (not zombie) processes of the given sessions: every Ray process a node started.

    Ray's agents and workers rename themselves (``ray::RuntimeEnvAgent``), so their command
    lines no longer name the cluster's folder; their session is still the one ``ray start``
    ran in.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) in sessions and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _end(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@dataclass(frozen=True)
class Cluster:
    """A running two-node Ray cluster on this machine.

    Attributes:
        address: The head's GCS address, for ``--address``.
        nodes: Each node's id and resources.
        worker_node: The id of the node started with ``ray start --address``.
        head_only: A folder the head and the driver see and the worker node sees empty, or
            None where this machine cannot make one (no ``unshare``/``mount``).
    """

    address: str
    nodes: dict[str, dict[str, float]]
    worker_node: str
    head_only: Path | None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and a worker node (``ray start``), one CPU each; always stopped at the end.

    Every port is a free one (other Ray instances may run on this machine), and the nodes
    share a temporary folder of their own (short: Ray's socket paths must fit in 107 bytes).
    Only the processes of the sessions started here are ended, never ``ray stop``, which
    would end every Ray instance of the machine.
    """
    root = Path(tempfile.mkdtemp(prefix="hps-cluster-", dir="/tmp"))
    head_only = root / "head_only"
    head_only.mkdir()
    hide = _can_hide(head_only)
    env = {**os.environ, **AUTH_OFF, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    gcs, client, dashboard, head_agent, node_agent = _free_ports(5)
    address = f"127.0.0.1:{gcs}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0"]
    common += ["--temp-dir", str(root / "ray"), "--disable-usage-stats"]
    common += ["--object-store-memory", str(200 * 2**20)]  # Ray's default: 30% of the RAM
    head = [str(RAY), "start", "--head", "--port", str(gcs), *common]
    head += ["--include-dashboard", "false", "--dashboard-port", str(dashboard)]
    head += ["--ray-client-server-port", str(client)]
    head += ["--dashboard-agent-listen-port", str(head_agent)]
    worker = [str(RAY), "start", "--address", address, *common]
    worker += ["--dashboard-agent-listen-port", str(node_agent)]
    if hide:  # the worker node's own view: an empty tmpfs over head_only
        script = 'mount -t tmpfs tmpfs "$0" && exec "$@"'
        worker = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        worker += [str(head_only), str(RAY), "start", "--address", address, *common]
        worker += ["--dashboard-agent-listen-port", str(node_agent)]
    sessions: set[int] = set()
    try:
        for name, command in (("head", head), ("worker", worker)):
            log = root / f"{name}.log"
            with log.open("w") as out:
                started = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            sessions.add(started.pid)  # its own session: every Ray process of the node
            if started.wait(timeout=120) != 0:
                raise RuntimeError(f"`ray start` of the {name} failed:\n{log.read_text()[-3000:]}")
        waited = subprocess.run(
            [sys.executable, "-c", _WAIT_FOR_NODES, address, "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        nodes: dict[str, dict[str, float]] = json.loads(waited.stdout.strip().splitlines()[-1])
        assert len(nodes) == 2, nodes
        (worker_node,) = [n for n, res in nodes.items() if "node:__internal_head__" not in res]
        yield Cluster(address, nodes, worker_node, head_only if hide else None)
    finally:
        _end(_alive_in_sessions(sessions), signal.SIGTERM)
        deadline = time.monotonic() + 5  # the GCS and raylets may ignore it: then SIGKILL
        while _alive_in_sessions(sessions) and time.monotonic() < deadline:
            time.sleep(0.3)
        _end(_alive_in_sessions(sessions), signal.SIGKILL)
        time.sleep(0.5)
        left = _alive_in_sessions(sessions)
        named = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"
        assert not named.stdout.strip(), f"processes still name {root}: {named.stdout}"


# --------------------------------------------------------------------------------------------
# GPUs: logical GPUs on local Ray


@pytest.fixture
def two_logical_gpus() -> Iterator[None]:
    """Local Ray declaring 4 CPUs and 2 GPUs: Ray schedules GPUs as plain counted resources."""
    import ray

    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_half_gpu_trials_share_each_gpu_two_at_a_time(
    synthetic_study: Callable[..., Path], two_logical_gpus: None
) -> None:
    """gpus_per_trial 0.5 on 2 GPUs: 4 trials at once, exactly 2 per GPU, on both GPUs, each
    process seeing the one GPU Ray gave it (CUDA_VISIBLE_DEVICES)."""
    _placed_objective()
    write_space(sleep=0.5)
    path = synthetic_study(
        task="placed",
        scheduler={"type": "fifo"},
        budget={"trials": 12, "epochs": 4},
        resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5},
    )
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    assert len(trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    by_gpu: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for trial in trials.values():
        seen = trial.user_attrs["seen_cuda"]  # what the objective's process saw
        assert seen in {"0", "1"}, seen  # one whole device each, never both
        assert trial.user_attrs["cuda_visible_devices"] == seen  # recorded by the worker
        by_gpu[seen].append(training_interval(trial))
    assert sorted(by_gpu) == ["0", "1"], "trials spread over both GPUs"
    for gpu, intervals in by_gpu.items():
        # Two trials trained together on each GPU, and never a third.
        assert peak_overlap(intervals) == 2, (gpu, intervals)
    assert peak_overlap([i for intervals in by_gpu.values() for i in intervals]) <= 4


# --------------------------------------------------------------------------------------------
# a real two-node cluster


def test_trials_run_on_both_nodes_with_the_code_sent_to_them(
    cluster: Cluster,
    synthetic_study: Callable[..., Path],
    postgres_url: str,
) -> None:
    """The README's recipe: `hpsearch run --address HEAD:PORT --storage postgresql://...`."""
    _placed_objective()
    write_space(sleep=0.5)
    path = synthetic_study(
        task="placed",
        scheduler={"type": "fifo"},
        budget={"trials": 6, "epochs": 3},
        resources={"cpus_per_trial": 1, "gpus_per_trial": 0, "max_concurrent": 2},
    )
    run = _hpsearch("run", str(path), "--address", cluster.address, "--storage", postgres_url)
    err = " ".join(run.stderr.split())
    assert run.returncode == 0, err[-3000:]
    assert "Running 6 trial(s) of 'synthetic', 2 at a time" in err
    assert "This run: 6 trial(s)" in err and "COMPLETE 6, PRUNED 0, FAIL 0" in err
    trials = stored_trials(postgres_url)
    assert sorted(trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    placed = {n: t.user_attrs["node"] for n, t in trials.items()}
    assert set(placed.values()) == set(cluster.nodes), placed  # both nodes ran trials
    assert {t.user_attrs["hostname"] for t in trials.values()} == {socket.gethostname()}
    # One trial per node at a time (one CPU each), both nodes busy together.
    assert peak_overlap([training_interval(t) for t in trials.values()]) == 2
    for node in cluster.nodes:
        mine = [training_interval(t) for t in trials.values() if t.user_attrs["node"] == node]
        assert peak_overlap(mine) == 1, (node, mine)
    for trial in trials.values():
        # The workers imported the code the job sent, unpacked by Ray on their node, not the
        # driver's files.
        objective = trial.user_attrs["objective_file"]
        package = trial.user_attrs["hpsearch_file"]
        assert "/runtime_resources/py_modules_files/" in objective, objective
        assert f"/{_cluster.SHIPPED_PREFIX}" in objective and objective.endswith("/placed.py")
        assert "/runtime_resources/py_modules_files/" in package, package
        assert not any("node" in epoch for epoch in trial_history(trial))


def test_a_node_without_the_data_stops_the_run_before_any_trial(
    cluster: Cluster,
    synthetic_study: Callable[..., Path],
    xgamma_file: Path,
) -> None:
    if cluster.head_only is None:
        pytest.skip("no mount namespace here to hide the data from one node")
    data = cluster.head_only / "xgamma.h5"
    shutil.copy(xgamma_file, data)
    path = synthetic_study(data__path=str(data), resources={"cpus_per_trial": 1})
    run = _hpsearch("run", str(path), "--address", cluster.address)
    err = " ".join(run.stderr.split())
    assert run.returncode == 2, err[-3000:]
    assert "data.path" in err and f"{data} is missing" in err, err
    assert f"node {cluster.worker_node[:12]}" in err  # the node that lacks it, named
    (head,) = set(cluster.nodes) - {cluster.worker_node}
    assert f"node {head[:12]}" not in err  # the head reads it
    assert "same path on every node" in err
    assert stored_trials() == {}, "no trial was asked"


# --------------------------------------------------------------------------------------------
# the parts, without Ray


def test_the_data_check_names_each_problem(tmp_path: Path, xgamma_file: Path) -> None:
    good = tmp_path / "good.h5"
    shutil.copy(xgamma_file, good)
    text = tmp_path / "text.h5"
    text.write_bytes(b"not hdf5" * 100)
    size = good.stat().st_size
    expected = {
        str(good): size,
        str(tmp_path / "absent.h5"): size,
        str(tmp_path): 0,
        str(text): 800,
    }
    problems = _cluster.data_problems(expected)
    assert problems == [
        f"{tmp_path / 'absent.h5'} is missing",
        f"{tmp_path} is not a file",
        f"{text} is not an HDF5 file",
    ]
    other = _cluster.data_problems({str(good): size + 1})
    assert other == [
        f"{good} has {size} bytes, the driver's copy {size + 1} (another or a partial copy)"
    ]
    with h5py.File(good, "r") as file:  # the check left the file as it was
        assert "waveforms" in file


def _objective_folder(root: Path, *, imports_helper: bool) -> Path:
    folder = root / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "events.h5").write_bytes(b"x" * 1000)
    (folder / ".venv" / "lib").mkdir(parents=True)
    (folder / ".venv" / "lib" / "big.py").write_text("x = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\0")
    (folder / "weights.keras").write_bytes(b"\0" * 100)
    (folder / "helper.py").write_text("SCALE = 3.0\n")
    (folder / "config.yaml").write_text("a: 1\n")
    head = "import helper\n" if imports_helper else "import math\n"
    body = "METRICS = ('val_accuracy', 'train_seconds')\ndef train(ctx):\n    pass\n"
    (folder / "objective.py").write_text(head + body)
    return folder


def test_an_objective_travels_alone_or_with_the_modules_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _objective_folder(tmp_path / "a", imports_helper=False)
    staged, name, files = _cluster.stage_objective(
        alone / "objective.py", tmp_path / "stage_a", source="study.yaml"
    )
    assert (name, files) == ("objective.py", ("objective.py",))
    assert sorted(p.name for p in staged.iterdir()) == ["objective.py"]

    with_helper = _objective_folder(tmp_path / "b", imports_helper=True)
    assert _cluster.sibling_imports(with_helper / "objective.py") == ["helper"]
    staged, name, files = _cluster.stage_objective(
        with_helper / "objective.py", tmp_path / "stage_b", source="study.yaml"
    )
    # Code and small files go; data, models, caches and environments stay.
    assert sorted(files) == ["config.yaml", "helper.py", "objective.py"]
    assert staged.name.startswith(_cluster.SHIPPED_PREFIX)

    # On a node: the staged folder is found by its name on the worker's path, and the
    # objective imports its sibling from there.
    monkeypatch.syspath_prepend(str(staged.parent))
    found = _cluster.locate_objective(f"{staged.name}/{name}")
    assert found == staged / "objective.py"
    monkeypatch.delitem(sys.modules, "helper", raising=False)
    from hpsearch.objective import load_objective

    module = load_objective(found)
    assert module.helper.SCALE == 3.0
    assert module.helper.__file__ == str(staged / "helper.py")
    with pytest.raises(TrialFailed, match="not on this worker's path"):
        _cluster.locate_objective(f"{_cluster.SHIPPED_PREFIX}0000/objective.py")


def test_a_folder_too_large_to_send_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _objective_folder(tmp_path, imports_helper=True)
    (folder / "notes.txt").write_text("n" * 5000)
    monkeypatch.setattr(_cluster, "MAX_OBJECTIVE_BYTES", 4000)
    with pytest.raises(InputError, match="folder of their own") as raised:
        _cluster.stage_objective(folder / "objective.py", tmp_path / "stage", source="s.yaml")
    assert raised.value.key == "objective_file"


def test_placement_keys_stay_out_of_history(tmp_path: Path) -> None:
    from hpsearch.runner._worker import PLACEMENT_KEYS, REPORT_KEY, ReportChannel, trial_log

    sent: list[dict[str, Any]] = []
    channel = ReportChannel(sent.append, {"node": "abc", "hostname": "h"})
    channel({"epoch": 1, "val_accuracy": 0.5})
    own = sent[0][REPORT_KEY]
    assert own["node"] == "abc" and own["hostname"] == "h" and "worker_pid" in own
    assert {"node", "hostname", "worker_pid"} <= set(PLACEMENT_KEYS)
    # A log folder the node cannot make: the trial logs to the node's temporary folder.
    blocked = tmp_path / "file"
    blocked.write_text("")
    log = trial_log(str(blocked / "run" / "trial_logs"), 3)
    assert log is not None and log.name == "trial_00003.log"
    assert str(log).startswith(tempfile.gettempdir())
