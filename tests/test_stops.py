"""How `hpsearch run` stops, as a user sees it: exit status, Ctrl-C, SIGTERM, quiet failures.

Each test runs the real command in a subprocess on the synthetic objective and sends it real
signals, since signal handling, exit codes and what reaches the terminal cannot be seen from
inside one Python process.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState

from synthetic_runs import poll_trials, stored_trials, write_space

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).with_name("hpsearch")


class Run:
    """`hpsearch run` in a subprocess of its own session, its stderr read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(CLI), "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its Ray processes share its session id
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put((time.monotonic(), line))

    def wait_for_line(self, text: str, timeout: float) -> float:
        """When a stderr line containing ``text`` arrived (fails after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return at
        raise AssertionError(f"no line with {text!r} in {timeout} s; saw: {''.join(self.seen)}")

    def wait_for_training(self, timeout: float = 120) -> None:
        """Until the first trial has reported an epoch."""
        if poll_trials(lambda ts: any(t.intermediate_values for t in ts.values()), timeout):
            return
        while not self.lines.empty():
            self.seen.append(self.lines.get()[1])
        raise AssertionError(
            f"no trial trained within {timeout} s (driver exit status "
            f"{self.process.poll()}); its stderr: {''.join(self.seen)[-3000:]}"
        )

    def finish(self, timeout: float) -> str:
        """Wait for the exit; the rest of stderr."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get()[1])
        return "".join(self.seen)


def ray_processes(session: int) -> list[str]:
    """Ray processes still alive in a session (the driver's, started with its own)."""
    out = subprocess.run(
        ["ps", "-eo", "sid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for row in out.splitlines():
        sid, stat, args = ([*row.split(None, 2), "", ""])[:3]
        if sid == str(session) and not stat.startswith("Z") and "ray" in args.lower():
            found.append(args)
    return found


def _no_ray_left(session: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while ray_processes(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_processes(session), ray_processes(session)


def _long_study(synthetic_study: Callable[..., Path]) -> Path:
    write_space(sleep=0.3)
    return synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 3, "epochs": 100},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )


def test_ctrl_c_is_acknowledged_at_once_cut_and_exits_130(
    synthetic_study: Callable[..., Path],
) -> None:
    path = _long_study(synthetic_study)
    run = Run(str(path))
    run.wait_for_training()
    sent = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    said = run.wait_for_line("stopping: cutting 1 running trial(s)", timeout=5)
    err = run.finish(timeout=60)
    assert said - sent < 2.0, f"acknowledged {said - sent:.2f} s after Ctrl-C"
    assert "Ctrl-C again to stop at once" in err
    assert run.process.returncode == 130, err
    assert f"hpsearch run {path}" in " ".join(err.split()), "the exit says how to resume"
    (trial,) = stored_trials().values()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["stop_reason"] == "interrupted"
    _no_ray_left(run.process.pid)


def test_a_second_ctrl_c_stops_hard_without_hanging(
    synthetic_study: Callable[..., Path],
) -> None:
    """A trial that does not stop when asked (a slow Keras fit): the first Ctrl-C waits for it,
    the second one does not."""
    path = synthetic_study(
        scheduler={"type": "fifo"},
        budget={"trials": 2, "epochs": 100},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "import time\n"
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n"
        "    for epoch in range(1, 101):\n"
        "        time.sleep(0.2)\n"
        "        try:\n"
        "            ctx.report({'epoch': epoch, 'val_accuracy': 0.5,\n"
        "                        'train_seconds': 1.0 * epoch, 'complete': epoch == 100})\n"
        "        except SystemExit:  # stopped: linger, as a slow Keras fit can\n"
        "            time.sleep(60)\n"
        "            raise\n"
    )
    run = Run(str(path))
    run.wait_for_training()
    run.process.send_signal(signal.SIGINT)
    run.wait_for_line("stopping: cutting", timeout=5)
    time.sleep(1.0)
    assert run.process.poll() is None, "the first Ctrl-C waits for the trial to end"
    second = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    err = run.finish(timeout=30)
    assert time.monotonic() - second < 20, "the second Ctrl-C stopped within seconds"
    assert run.process.returncode == 130, err
    assert "stopping now" in err, err
    (trial,) = stored_trials().values()
    assert trial.state == TrialState.FAIL, "the cut trial was recorded before the exit"
    assert trial.user_attrs["stop_reason"] == "interrupted"
    _no_ray_left(run.process.pid)


def test_sigterm_is_handled_like_ctrl_c_and_exits_143(
    synthetic_study: Callable[..., Path],
) -> None:
    run = Run(str(_long_study(synthetic_study)))
    run.wait_for_training()
    run.process.send_signal(signal.SIGTERM)
    err = run.finish(timeout=60)
    assert run.process.returncode == 143, err
    assert "stopping: cutting 1 running trial(s)" in err
    (trial,) = stored_trials().values()
    assert trial.user_attrs["stop_reason"] == "interrupted"
    _no_ray_left(run.process.pid)


def test_a_run_without_one_complete_trial_exits_1_quietly(
    synthetic_study: Callable[..., Path],
) -> None:
    """Every trial fails: exit 1 with what failed; one line per trial, not Ray's traceback;
    the stored error without colour codes; the trial's own output in its log file."""
    path = synthetic_study(
        budget={"trials": 2, "epochs": 2, "max_failures_in_a_row": 5},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    (Path("objectives") / "synthetic.py").write_text(
        "import warnings\n"
        "METRICS = ('val_accuracy', 'train_seconds')\n"
        "def train(ctx):\n"
        "    print('hello from trial', ctx.number)\n"
        "    warnings.warn('a warning of trial %d' % ctx.number)\n"
        "    raise RuntimeError('\\x1b[31mbroken objective\\x1b[0m')\n"
    )
    run = Run(str(path))
    err = run.finish(timeout=90)
    assert run.process.returncode == 1, err
    assert "no trial of this run completed" in " ".join(err.split())
    assert err.count("broken objective") == 2, err  # one line per failed trial
    assert "Traceback" not in err
    trials = stored_trials()
    assert [t.state for t in trials.values()] == [TrialState.FAIL] * 2
    for trial in trials.values():
        assert "broken objective" in trial.user_attrs["error"]
        assert "\x1b[" not in trial.user_attrs["error"]
        log = Path(trial.user_attrs["log_file"]).read_text()
        assert f"hello from trial {trial.number}" in log
        assert f"a warning of trial {trial.number}" in log


def test_exit_status_tells_what_the_run_did() -> None:
    """0 only when the run did what was asked (pure: no Ray)."""
    from hpsearch.cli.run import exit_code
    from hpsearch.lifecycle import decide
    from hpsearch.runner._driver import RunSummary

    objectives = ["val_accuracy"]
    done = decide(
        {"epoch": 2, "val_accuracy": 0.8, "complete": True}, objectives=objectives, epochs=2
    )
    pruned = decide({"epoch": 1}, objectives=objectives, epochs=2, scheduler_stopped=True)
    failed = decide(None, objectives=objectives, epochs=2, error="boom")
    assert exit_code(RunSummary(outcomes={0: done, 1: pruned})) == 0
    assert exit_code(RunSummary()) == 0  # nothing left to run: the budget is spent
    assert exit_code(RunSummary(outcomes={0: failed, 1: pruned})) == 1
    assert exit_code(RunSummary(outcomes={0: done}, stop_reason="failure_streak")) == 1
    assert exit_code(RunSummary(outcomes={0: done}, signal=signal.SIGINT)) == 130
    assert exit_code(RunSummary(outcomes={0: done}, signal=signal.SIGTERM)) == 143


def test_live_progress_shows_counts_running_trials_best_and_time() -> None:
    """The terminal's live display, fed as the driver feeds it (pure: no Ray, no terminal)."""
    from hpsearch.lifecycle import decide
    from hpsearch.runner._progress import Progress

    now = [100.0]
    progress = Progress(
        total=4,
        objective="val_accuracy",
        maximize=True,
        metric="val_accuracy",
        dashboard="hpsearch dashboard studies/s.yaml",
        clock=lambda: now[0],
    )
    objectives = ["val_accuracy"]
    progress.epoch(0, 1, 0.5)
    progress.epoch(1, 2, 0.6)
    progress.ended(
        0,
        decide(
            {"epoch": 2, "val_accuracy": 0.7, "complete": True}, objectives=objectives, epochs=2
        ),
    )
    progress.ended(2, decide(None, objectives=objectives, epochs=2, error="boom"))
    now[0] = 130.0
    text = "\n".join(progress.lines())
    assert "2/4 finished (COMPLETE 1, PRUNED 0, FAIL 1), elapsed 30s, about 30s left" in text
    assert "best val_accuracy: 0.7 (trial 0)" in text
    assert "running trial   1  epoch   2  val_accuracy 0.6" in text
    assert "running trial   0" not in text
    assert "hpsearch dashboard studies/s.yaml" in text
