"""PostgreSQL as Optuna storage: a real server on loopback (tests/postgres.py), real drivers.

The two-driver test runs two `hpsearch run` processes on one study at once, as two machines
of a cluster sharing one database would: the study's trial budget is shared, and every trial
must end exactly once, in its true state.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.lifecycle import counts_against_budget, decide
from hpsearch.recorder import Recorder, open_storage
from hpsearch.results.storage import trial_history
from hpsearch.spec import load_study
from postgres import Server

CLI = Path(sys.executable).parent / "hpsearch"


def test_recorder_writes_read_back_from_postgresql(
    synthetic_study: Callable[..., Path], postgres_url: str
) -> None:
    study = load_study(synthetic_study(storage=postgres_url))
    recorder = Recorder(study, open_storage(postgres_url, heartbeat_seconds=5))
    objectives = [o.metric for o in study.spec.objectives]
    done, stopped, broken = recorder.ask(), recorder.ask(), recorder.ask()
    last = {"epoch": 4, "val_accuracy": 0.8, "train_seconds": 3.0, "complete": True}
    recorder.record_epoch(done.number, last)
    recorder.finish(done.number, decide(last, objectives=objectives, epochs=4), [last])
    half = {"epoch": 1, "val_accuracy": 0.2, "train_seconds": 1.0}
    recorder.record_epoch(stopped.number, half)
    outcome = decide(half, objectives=objectives, epochs=4, scheduler_stopped=True)
    recorder.finish(stopped.number, outcome, [half])
    recorder.finish(broken.number, decide(None, objectives=objectives, epochs=4, error="boom"), [])

    stored = {
        t.number: t for t in optuna.load_study(study_name="synthetic", storage=postgres_url).trials
    }
    assert stored[done.number].state == TrialState.COMPLETE
    assert stored[done.number].values == pytest.approx([0.8, 3.0])
    assert stored[done.number].params == {"x": done.params["x"]}
    assert trial_history(stored[done.number]) == [last]
    assert stored[stopped.number].state == TrialState.PRUNED
    assert stored[stopped.number].intermediate_values == {1: 0.2}
    assert stored[broken.number].state == TrialState.FAIL
    assert stored[broken.number].user_attrs["error"] == "boom"
    assert {t.user_attrs["seed"] for t in stored.values()} == {
        done.seed,
        stopped.seed,
        broken.seed,
    }


@pytest.mark.e2e
def test_two_drivers_share_one_study_on_postgresql(
    synthetic_study: Callable[..., Path], postgres_url: str
) -> None:
    """Two `hpsearch run` drivers at once on one 40-trial study: 0 lost, 0 duplicated, 0 left
    RUNNING, the budget shared, and both drivers did part of the work."""
    path = synthetic_study(
        storage=postgres_url,
        scheduler={"type": "fifo"},
        budget={"trials": 40, "epochs": 2},
        resources={"cpus_per_trial": 1, "max_concurrent": 1},
    )
    drivers = [
        subprocess.Popen(
            [str(CLI), "run", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for driver in drivers:
        out, _ = driver.communicate(timeout=420)
        outputs.append(out)
    codes = [driver.returncode for driver in drivers]
    # The synthetic space makes trial 2 fail on purpose: a run with a FAIL is still a run that
    # did what was asked.
    assert codes == [0, 0], "\n\n".join(outputs)

    trials = optuna.load_study(study_name="synthetic", storage=postgres_url).trials
    states = collections.Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0
    counted = [
        t for t in trials if counts_against_budget(t.state.name, t.user_attrs.get("stop_reason"))
    ]
    assert len(counted) == 40, states
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no trial recorded twice
    # Each trial trained once, by one driver, with its own seed.
    seeds = [t.user_attrs["seed"] for t in trials]
    assert len(seeds) == len(set(seeds))
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            assert trial_history(trial)[-1]["seen_seed"] == trial.user_attrs["seed"]
    by_driver = collections.Counter(
        Path(t.user_attrs["log_file"]).parent.parent.name for t in trials
    )
    assert len(by_driver) == 2 and min(by_driver.values()) >= 5, by_driver


@pytest.mark.e2e
def test_a_storage_password_appears_nowhere(
    synthetic_study: Callable[..., Path],
    postgres: Server,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The password in a storage URL is used, and never shown: not in the terminal (run,
    report, export, a failure to connect), not in stored attributes, files or exported configs.
    The test server trusts loopback, so any password connects."""
    secret = "s3cretPW-9f2"
    database = postgres.new_database()
    url = database.replace("postgres@", f"postgres:{secret}@")
    path = synthetic_study(storage=url, budget={"trials": 2, "epochs": 2})
    assert main(["run", str(path)]) == 0
    assert main(["report", str(path), "--no-images"]) == 0
    assert main(["export", str(path), "--trial", "0", "-o", "exported.yaml"]) == 0
    refused = database.rsplit(":", 1)[0] + ":1/nothing"
    assert main(["ls", "--storage", refused.replace("postgres@", f"postgres:{secret}@")]) == 2
    printed = capfd.readouterr()
    assert secret not in printed.out + printed.err
    assert "***" in printed.out + printed.err  # the URL is shown, masked

    for file in Path(".").rglob("*"):
        if (
            file.is_file() and file.resolve() != path.resolve()
        ):  # the study file is where the user wrote it
            assert secret not in file.read_text(errors="replace"), file
    stored = optuna.load_study(study_name="synthetic", storage=database)
    assert len(stored.trials) == 2
    everything = json.dumps(
        [stored.user_attrs, stored._storage.get_study_system_attrs(stored._study_id)]
        + [[t.user_attrs, t.system_attrs] for t in stored.trials],
        default=str,
    )
    assert secret not in everything
