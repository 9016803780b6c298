"""Studies through Ray Tune + ASHA, end to end, asserting what landed in storage.

The synthetic objective (tests/objectives/synthetic.py) reports what its worker saw and when it
trained, so these tests compare storage with the worker and measure training itself.
"""

from __future__ import annotations

import gc
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import ray
from optuna.trial import FrozenTrial, TrialState

from hpsearch.cli import main
from hpsearch.results.storage import trial_history
from synthetic_runs import (
    STORAGE,
    parallelism,
    peak_overlap,
    stored_trials,
    training_interval,
    write_space,
)

sys.path.insert(0, str(Path(__file__).parent / "objectives"))
from synthetic import quality

pytestmark = pytest.mark.e2e


def _assert_worker_saw_what_storage_holds(trial: FrozenTrial) -> None:
    assert trial.user_attrs["seen_x"] == trial.params["x"]
    assert trial.user_attrs["seen_seed"] == trial.user_attrs["seed"]
    if trial.state == TrialState.COMPLETE:
        assert trial.values is not None
        assert trial.values[0] == pytest.approx(quality(trial.number, trial.params["x"]))
        epochs = trial.user_attrs["epochs_reached"]
        assert trial.values[1] == pytest.approx(epochs * (0.5 + 0.5 * trial.params["x"]))


@pytest.fixture
def fake_gpu_ray() -> Iterator[None]:
    """A local Ray that declares 2 CPUs and 1 GPU: Ray schedules GPUs as plain resources."""
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_asha_states_and_worker_reuse(synthetic_study: Callable[..., Path]) -> None:
    """One trial at a time, so ASHA's decisions are known: see tests/objectives/synthetic.py."""
    write_space(fail_on=2)
    path = synthetic_study(resources={"cpus_per_trial": 1, "max_concurrent": 1})
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    assert {n: t.state for n, t in trials.items()} == {
        0: TrialState.COMPLETE,  # first at every rung: always continues
        1: TrialState.PRUNED,  # worse than trial 0 at the first rung
        2: TrialState.FAIL,  # the synthetic objective raises for trial 2
        3: TrialState.PRUNED,
    }
    done, cut, failed = trials[0], trials[1], trials[2]
    assert done.values is not None and len(done.values) == 2
    assert done.user_attrs["epochs_reached"] == 4
    assert sorted(done.intermediate_values) == [1, 2, 3, 4]
    assert done.user_attrs["test_accuracy"] == pytest.approx(done.values[0] - 0.01)
    assert len(trial_history(done)) == 4
    assert "history" not in done.user_attrs  # a system attribute: `optuna trials` stays narrow
    assert cut.values is None
    assert cut.user_attrs["epochs_reached"] == 1
    assert cut.user_attrs["stop_reason"] == "scheduler"
    assert list(cut.intermediate_values) == [1]
    assert failed.user_attrs["stop_reason"] == "error"
    assert "synthetic failure of trial 2" in failed.user_attrs["error"]
    for trial in (done, cut, trials[3]):
        _assert_worker_saw_what_storage_holds(trial)
    # reuse_actors: the trial after a finished one runs in the same worker process.
    assert done.user_attrs["worker_pid"] == cut.user_attrs["worker_pid"]
    # Tune's own per-trial CSV, JSON and TensorBoard logs are off: storage is the record.
    written = {p.name for p in Path("results/ray").rglob("*") if p.is_file()}
    assert not {"progress.csv", "result.json", "params.json"} & written
    assert not [name for name in written if name.startswith("events.out.tfevents")]
    # What the run ran on, for the report's provenance: this machine, these packages.
    attrs = optuna.load_study(study_name="synthetic", storage=STORAGE).user_attrs
    assert attrs["hardware"].startswith(f"1 node: {socket.gethostname()} ")
    assert attrs["versions"]["ray"] == ray.__version__
    (run,) = attrs["runs"]
    assert run["ray_address"] == "local" and run["nodes"][0]["cpus"] == os.cpu_count()
    assert attrs["budget"]["trials"] == 4 and attrs["scheduler"]["type"] == "asha"
    # The simulator's own record in the data file: generator, seed and parameters.
    assert attrs["data"]["file_attrs"]["seed"] == 11
    assert attrs["data"]["file_attrs"]["task"] == "xgamma"
    assert attrs["data"]["file_attrs"]["config"]["gamma_fraction"] == 0.5  # decoded JSON


def test_trials_train_concurrently_and_resume_continues_the_search(
    synthetic_study: Callable[..., Path],
) -> None:
    write_space(sleep=0.2)
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 8, "epochs": 5},
        resources={"cpus_per_trial": 1, "max_concurrent": 2},
    )
    assert main(["run", str(path)]) == 0
    first = stored_trials()
    assert all(t.state == TrialState.COMPLETE for t in first.values())
    # Overlap of the training itself, timed inside the workers (not of ask and tell): two
    # slots kept busy, not one trial after another with a brief overlap.
    intervals = [training_interval(t) for t in first.values()]
    assert peak_overlap(intervals) == 2, intervals
    assert parallelism(intervals) > 1.5, intervals

    assert main(["run", str(path), "--set", "budget.trials=10"]) == 0
    both = stored_trials()
    assert len(both) == 10
    first_x = {first[n].params["x"] for n in first}
    second_x = {both[n].params["x"] for n in (8, 9)}
    assert not first_x & second_x, "the resumed run drew the first run's parameters again"
    for trial in both.values():
        _assert_worker_saw_what_storage_holds(trial)
    assert main(["run", str(path), "--set", "budget.trials=10"]) == 0  # nothing left to do
    assert len(stored_trials()) == 10


def test_time_budget_cuts_trials_as_fail_and_frees_their_budget(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_space(sleep=0.5)
    path = synthetic_study(
        scheduler={"type": "asha", "metric": "val_accuracy", "mode": "max", "grace_period": 40},
        budget={"trials": 3, "epochs": 40, "seconds": 8},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    assert main(["run", str(path)]) == 1, "no trial completed: the exit status says so"
    trials = stored_trials()
    assert trials, "at least the first trial started"
    assert [t.state for t in trials.values()] == [TrialState.FAIL] * len(trials)
    assert {t.user_attrs["stop_reason"] for t in trials.values()} == {"time_budget"}
    assert 1 <= trials[0].user_attrs["epochs_reached"] < 40
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"trial +0 FAIL", err) and not re.search(r"trial +\d+ PRUNED", err)
    assert "PRUNED 0" in err

    # The cut trials were never judged: a rerun still has all 3 trials of its budget ahead,
    # and trains the cut trials' parameters again first.
    assert main(["run", str(path), "--set", "budget.seconds=2"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "Running 3 trial(s)" in err
    assert "no trial of this run completed" in err
    again = stored_trials()
    reruns = [t for t in again.values() if "rerun_of" in t.user_attrs]
    assert reruns and all(t.params == again[t.user_attrs["rerun_of"]].params for t in reruns)


def test_one_decision_drives_storage_console_and_streak(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """train_seconds reported but not listed in METRICS: stored, shown and counted COMPLETE;
    a final NaN: stored, shown and counted FAIL, and the failure streak stops the run."""
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 6, "epochs": 2, "max_failures_in_a_row": 2},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "import math\n"
        "METRICS = ('val_accuracy',)\n"
        "def train(ctx):\n"
        "    for epoch in (1, 2):\n"
        "        last = epoch == 2\n"
        "        value = math.nan if last and ctx.number >= 1 else 0.5 + 0.1 * epoch\n"
        "        ctx.report({'epoch': epoch, 'val_accuracy': value,\n"
        "                    'train_seconds': 1.0 * epoch, 'complete': last})\n"
    )
    assert main(["run", str(path)]) == 1, "the failure streak stopped the run"
    trials = stored_trials()
    states = [t.state for t in trials.values()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert trials[0].values == pytest.approx([0.7, 2.0])
    assert trials[1].user_attrs["stop_reason"] == "no_value"
    err = " ".join(capsys.readouterr().err.split())
    assert "trial 0 COMPLETE" in err
    assert "trial 1 FAIL" in err and "trial 2 FAIL" in err
    assert "COMPLETE 1, PRUNED 0, FAIL 2" in err
    assert "2 trials failed in a row" in err


def test_a_streak_of_failures_stops_the_run(synthetic_study: Callable[..., Path]) -> None:
    path = synthetic_study(
        budget={"trials": 8, "epochs": 2, "max_failures_in_a_row": 2},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n    raise RuntimeError('broken objective')\n"
    )
    assert main(["run", str(path)]) == 1
    trials = stored_trials()
    assert [t.state for t in trials.values()] == [TrialState.FAIL, TrialState.FAIL]
    assert all("broken objective" in t.user_attrs["error"] for t in trials.values())
    assert {t.user_attrs["stop_reason"] for t in trials.values()} == {"error"}


def test_an_objective_that_returns_early_fails(synthetic_study: Callable[..., Path]) -> None:
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 1, "epochs": 3},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n"
        "    ctx.report({'epoch': 1, 'val_accuracy': 0.6, 'train_seconds': 1.0})\n"
    )
    assert main(["run", str(path)]) == 1
    (trial,) = stored_trials().values()
    assert trial.state == TrialState.FAIL
    assert "returned after epoch 1 of 3" in trial.user_attrs["error"]


def test_trials_wait_for_a_free_gpu_before_they_are_asked(
    synthetic_study: Callable[..., Path], fake_gpu_ray: None
) -> None:
    """One GPU, one GPU per trial, two CPUs: one trial at a time, each asked when it can start,
    and the time budget cuts (FAIL) instead of pruning trials that never trained."""
    write_space(sleep=0.6)
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 4, "epochs": 3, "seconds": 10},
        resources={"cpus_per_trial": 1, "gpus_per_trial": 1},
    )
    assert main(["run", str(path)]) == 0
    trials = sorted(stored_trials().values(), key=lambda t: t.number)
    trained = [t for t in trials if trial_history(t)]
    assert len(trained) >= 2
    assert peak_overlap([training_interval(t) for t in trained]) == 1
    for before, after in itertools.pairwise(trained):
        assert after.datetime_start is not None
        # Asked after the trial before it had finished training, not proposed blind with it.
        assert after.datetime_start.timestamp() >= training_interval(before)[1] - 0.05
    assert not [t for t in trials if t.state == TrialState.PRUNED]
    cut = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["stop_reason"] == "time_budget" for t in cut)


def test_xgamma_resnet_tiny_end_to_end(
    write_study: Callable[..., Path], xgamma_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped objective and space, for real, on tiny data: Keras in Ray workers."""
    import h5py

    from hpsearch.models import build_resnet1d

    with h5py.File(xgamma_file, "r") as file:
        n_samples = file["waveforms"].shape[1]
    path = write_study(
        data__path=str(xgamma_file),
        budget={"trials": 2, "epochs": 2},
        scheduler={"type": "fifo"},
        storage="sqlite:///results/xgamma.db",
    )
    assert main(["run", str(path)]) == 0
    trials = stored_trials("sqlite:///results/xgamma.db", "xgamma_resnet")
    assert len(trials) == 2
    stored = optuna.load_study(study_name="xgamma_resnet", storage="sqlite:///results/xgamma.db")
    assert stored.user_attrs["input_stats"]["amplitude_scale"] > 0
    baseline = stored.user_attrs["baseline"]  # scored once, drawn by the report
    assert (baseline["metric"], baseline["name"]) == ("test_accuracy", "rise-time cut")
    assert 0.5 < baseline["value"] < 1.0
    for trial in trials.values():
        assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
        val_accuracy, train_seconds = trial.values  # type: ignore[misc]
        assert 0.0 <= val_accuracy <= 1.0
        assert train_seconds > 0
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert [h["epoch"] for h in trial_history(trial)] == [1, 2]
        # The network the worker trained is the one the stored parameters describe.
        p = trial.params
        model = build_resnet1d(
            (n_samples, 1),
            2,
            blocks=p["blocks"],
            filters=p["filters"],
            kernel_size=p["kernel_size"],
            dropout=p["dropout"],
            l2=p["l2"],
            noise_std=p["noise_std"],
            downsample=p["downsample"],
        )
        assert trial.user_attrs["n_params"] == model.count_params()
    assert trials[0].params != trials[1].params
    out = capsys.readouterr().out
    assert "Pareto-optimal trials" in out


def test_the_closing_report_prints_while_ray_shuts_down(
    synthetic_study: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The report and Ray's shutdown run at the same time, each waiting to see the other begin.

    Run one after the other, the first would wait for the second in vain and the run fail.
    """
    import hpsearch.report

    report_began, shutdown_began = threading.Event(), threading.Event()
    real_report, real_shutdown = hpsearch.report.print_report, ray.shutdown
    seen: dict[str, object] = {}

    def report(*args: Any, **kwargs: Any) -> None:
        report_began.set()
        seen["shutdown during report"] = shutdown_began.wait(timeout=30)
        seen["report on main thread"] = threading.current_thread() is threading.main_thread()
        real_report(*args, **kwargs)

    def shutdown(*args: Any, **kwargs: Any) -> None:
        shutdown_began.set()
        seen["report during shutdown"] = report_began.wait(timeout=30)
        seen["shutdown on main thread"] = threading.current_thread() is threading.main_thread()
        real_shutdown(*args, **kwargs)

    monkeypatch.setattr(hpsearch.report, "print_report", report)
    monkeypatch.setattr(ray, "shutdown", shutdown)
    path = synthetic_study(scheduler={"type": "fifo"}, budget={"trials": 2, "epochs": 2})
    assert main(["run", str(path)]) == 0
    assert seen == {
        "shutdown during report": True,
        "report during shutdown": True,
        "report on main thread": False,
        "shutdown on main thread": True,
    }
    assert not ray.is_initialized()
    assert "Pareto-optimal trials" in capsys.readouterr().out


def test_a_run_that_raises_shuts_ray_down_and_prints_no_report(
    synthetic_study: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ray import tune

    import hpsearch.report

    def broken_fit(self: Any) -> None:
        raise RuntimeError("Tune broke")

    monkeypatch.setattr(tune.Tuner, "fit", broken_fit)
    reports: list[object] = []
    monkeypatch.setattr(hpsearch.report, "print_report", lambda *a, **k: reports.append(a))
    path = synthetic_study(scheduler={"type": "fifo"}, budget={"trials": 2, "epochs": 2})
    with pytest.raises(RuntimeError, match="Tune broke"):
        main(["run", str(path)])
    assert reports == []
    assert not ray.is_initialized()


def test_an_error_in_the_closing_report_is_raised_once_ray_is_down() -> None:
    from hpsearch.runner._driver import _shut_down_alongside

    order: list[str] = []

    def closing() -> None:
        raise ValueError("report failed")

    with pytest.raises(ValueError, match="report failed"):
        _shut_down_alongside(lambda: order.append("shutdown"), closing)
    assert order == ["shutdown"]


class _Cycle:
    """Garbage in a reference cycle, like a caught Ray error whose traceback holds ObjectRefs."""

    def __init__(self, freed: list[bool], shutting_down: threading.Event) -> None:
        self.me = self
        self.freed = freed
        self.shutting_down = shutting_down

    def __del__(self) -> None:
        self.freed.append(self.shutting_down.is_set())


def test_no_garbage_is_collected_while_ray_shuts_down_beside_the_report() -> None:
    """A cycle holding Ray objects, freed mid-shutdown, ends the process (Ray's QuickExit).

    The closing report allocates while Ray shuts down, and allocation sets off collections:
    a cycle they free whose ObjectRefs reach the core worker while it is shutting down kills
    the process with exit code 1 and no traceback (seen in tests/test_worker_retries.py).
    """
    from hpsearch.runner._driver import _shut_down_alongside

    shutting_down, closed = threading.Event(), threading.Event()
    freed: list[bool] = []

    def shutdown() -> None:
        shutting_down.set()
        closed.wait(timeout=30)
        shutting_down.clear()

    def closing() -> None:
        shutting_down.wait(timeout=30)
        # Far more than the youngest generation's threshold (700): collections run, if on.
        _ = [[n] for n in range(200_000)]
        closed.set()

    was_enabled = gc.isenabled()
    gc.enable()
    try:
        _Cycle(freed, shutting_down)  # unreachable at once, freed only by a collection
        _shut_down_alongside(shutdown, closing)
        assert gc.isenabled(), "collections are back on once Ray is down"
        gc.collect()
    finally:
        if not was_enabled:
            gc.disable()
    assert freed == [False], "the cycle was freed while Ray was shutting down"


def test_resources_ray_cannot_give_exit_2_and_run_nothing(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_study(resources={"cpus_per_trial": 1, "gpus_per_trial": 1})
    assert main(["run", str(path)]) == 2  # this machine (and CI) has no GPU
    err = " ".join(capsys.readouterr().err.split())
    assert "resources.gpus_per_trial" in err
    assert stored_trials() == {}


def test_unreachable_cluster_exits_2_at_once(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert main(["run", str(synthetic_study()), "--address", f"127.0.0.1:{port}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--address" in err and "nothing answers" in err
    assert not Path("results/test.db").exists()  # refused before storage was opened


def test_ctrl_c_cuts_running_trials_as_fail_not_pruned(
    synthetic_study: Callable[..., Path],
) -> None:
    """A real SIGINT to `hpsearch run` while a trial trains."""
    write_space(sleep=0.5)
    path = synthetic_study(
        scheduler={"type": "asha", "metric": "val_accuracy", "mode": "max", "grace_period": 40},
        budget={"trials": 3, "epochs": 40},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    cli = Path(sys.executable).with_name("hpsearch")
    run = subprocess.Popen([str(cli), "run", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if not Path("results/test.db").exists():
                continue  # creating the schema beside the driver races with it
            try:
                trials = stored_trials()
            except Exception:  # the driver has not created the study (or its tables) yet
                continue
            if trials and trials[0].intermediate_values:
                break
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=90)
    finally:
        run.kill()
    trials = stored_trials()
    assert [t.state for t in trials.values()] == [TrialState.FAIL]
    assert trials[0].user_attrs["stop_reason"] == "interrupted"
    assert trials[0].user_attrs["epochs_reached"] >= 1
    assert not re.search(r"trial +\d+ PRUNED", err)
    assert run.returncode == 130


def test_a_trial_ray_could_not_start_is_cut_and_replaced(
    synthetic_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune errors a trial whose reused worker cannot be reset (its last trial's thread did not
    end in time) without telling callbacks: it must still be recorded, freed and replaced."""
    monkeypatch.setenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", "1")
    path = synthetic_study(
        scheduler={"type": "asha", "metric": "val_accuracy", "mode": "max", "grace_period": 1},
        budget={"trials": 3, "epochs": 3},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "import time\n"
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n"
        "    for epoch in (1, 2, 3):\n"
        "        try:\n"
        "            ctx.report({'epoch': epoch, 'val_accuracy': 0.9 - 0.1 * ctx.number,\n"
        "                        'train_seconds': 1.0 * epoch, 'complete': epoch == 3})\n"
        "        except SystemExit:  # stopped: linger, as a slow Keras fit can\n"
        "            time.sleep(3)\n"
        "            raise\n"
    )
    assert main(["run", str(path)]) == 0
    trials = stored_trials()
    lost = [t for t in trials.values() if t.user_attrs.get("stop_reason") == "worker_lost"]
    assert lost, {n: t.user_attrs.get("stop_reason") for n, t in trials.items()}
    assert all(t.state == TrialState.FAIL and t.user_attrs["epochs_reached"] == 0 for t in lost)
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]
    judged = [t for t in trials.values() if t.user_attrs.get("stop_reason") != "worker_lost"]
    assert len(judged) == 3, "lost trials leave their place in the budget to others"
