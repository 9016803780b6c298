"""The Recorder against a real SQLite storage, read back with plain Optuna."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.errors import InputError
from hpsearch.lifecycle import decide
from hpsearch.recorder import Recorder, open_storage
from hpsearch.spec import load_study

OBJECTIVES = ["val_accuracy", "train_seconds"]


@pytest.fixture
def recorder(synthetic_study: Callable[..., Path]) -> Recorder:
    study = load_study(synthetic_study())
    return Recorder(study, open_storage(study.spec.storage))


def _epochs(recorder: Recorder, number: int, n: int, *, complete: bool) -> dict[str, object]:
    result: dict[str, object] = {}
    for epoch in range(1, n + 1):
        result = {"epoch": epoch, "val_accuracy": 0.5 + 0.1 * epoch, "train_seconds": 2.0 * epoch}
        recorder.record_epoch(number, result)
    if complete:
        result.update(test_accuracy=0.77, n_params=1234, complete=True)
    return result


def _finish(recorder: Recorder, number: int, last: dict[str, object] | None, **how: object) -> None:
    outcome = decide(last, objectives=OBJECTIVES, epochs=4, **how)  # type: ignore[arg-type]
    recorder.finish(number, outcome, history=[{"epoch": 1}])


def test_complete_pruned_fail_read_back_with_plain_optuna(recorder: Recorder) -> None:
    complete, pruned, failed = recorder.ask(), recorder.ask(), recorder.ask()
    _finish(recorder, complete.number, _epochs(recorder, complete.number, 4, complete=True))
    pruned_last = _epochs(recorder, pruned.number, 1, complete=False)
    _finish(recorder, pruned.number, pruned_last, scheduler_stopped=True)
    _finish(recorder, failed.number, None, error="Traceback ...\nValueError: boom")

    stored = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db")
    trials = {t.number: t for t in stored.get_trials()}
    done = trials[complete.number]
    assert done.state == TrialState.COMPLETE
    assert done.values == pytest.approx([0.9, 8.0])
    assert done.intermediate_values == pytest.approx({1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9})
    assert done.user_attrs["test_accuracy"] == 0.77
    assert done.user_attrs["n_params"] == 1234
    assert done.user_attrs["epochs_reached"] == 4
    assert done.user_attrs["seed"] == complete.seed
    assert done.user_attrs["hpsearch_version"]
    assert set(done.params) == {"x"}  # constants are not searched parameters
    assert isinstance(done.distributions["x"], optuna.distributions.FloatDistribution)

    cut = trials[pruned.number]
    assert cut.state == TrialState.PRUNED
    assert cut.values is None
    assert cut.user_attrs["epochs_reached"] == 1
    assert cut.user_attrs["val_accuracy"] == pytest.approx(0.6)
    assert cut.user_attrs["stop_reason"] == "scheduler"
    assert cut.intermediate_values == pytest.approx({1: 0.6})

    bad = trials[failed.number]
    assert bad.state == TrialState.FAIL
    assert "ValueError: boom" in bad.user_attrs["error"]

    assert [t.number for t in stored.best_trials] == [complete.number]
    assert stored.user_attrs["objectives"] == ["val_accuracy", "train_seconds"]
    assert stored.metric_names == ["val_accuracy", "train_seconds"]


def test_optuna_cli_reads_the_study(recorder: Recorder) -> None:
    ticket = recorder.ask()
    _finish(recorder, ticket.number, _epochs(recorder, ticket.number, 4, complete=True))
    optuna_cli = Path(sys.executable).with_name("optuna")
    out = subprocess.run(
        [
            str(optuna_cli),
            "trials",
            "--study-name",
            "synthetic",
            "--storage",
            "sqlite:///results/test.db",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out)
    assert rows[0]["state"] == "COMPLETE"
    assert rows[0]["values"] == pytest.approx({"val_accuracy": 0.9, "train_seconds": 8.0})


def test_missing_objective_value_is_fail_not_complete(recorder: Recorder) -> None:
    ticket = recorder.ask()
    _finish(
        recorder,
        ticket.number,
        {"epoch": 4, "val_accuracy": float("nan"), "train_seconds": 3.0, "complete": True},
    )
    trial = recorder.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["stop_reason"] == "no_value"
    assert "val_accuracy" in trial.user_attrs["error"]
    assert recorder.n_counted() == 1  # a failure of the objective counts against the budget


def test_leftover_running_trials_become_cut_fail_not_counted(
    synthetic_study: Callable[..., Path],
) -> None:
    study = load_study(synthetic_study())
    first = Recorder(study, open_storage(study.spec.storage))
    first.ask()  # a run killed here leaves this trial RUNNING
    again = Recorder(study, open_storage(study.spec.storage))
    assert again.n_counted() == 0
    assert again.fail_leftovers() == [0]
    trial = again.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["stop_reason"] == "interrupted"
    assert "interrupted" in trial.user_attrs["error"]
    assert again.n_counted() == 0, "a trial the run cut was never judged: not in the budget"


@pytest.mark.parametrize("reason", ["time_budget", "interrupted", "failure_streak"])
def test_trials_cut_by_the_run_are_fail_never_pruned(recorder: Recorder, reason: str) -> None:
    ticket = recorder.ask()
    _finish(
        recorder,
        ticket.number,
        _epochs(recorder, ticket.number, 2, complete=False),
        run_stop=reason,
    )
    trial = recorder.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["stop_reason"] == reason
    assert trial.user_attrs["epochs_reached"] == 2
    assert recorder.n_counted() == 0


def test_single_objective_pruned_trial_stores_no_value(
    synthetic_study: Callable[..., Path],
) -> None:
    """Optuna's tell(PRUNED) copies the last intermediate value (the scheduler's val_accuracy)
    into a single-objective study's value: here that would be val_loss = 0.7."""
    study = load_study(
        synthetic_study(
            objectives=[{"metric": "val_loss", "direction": "minimize"}],
            scheduler={"type": "asha", "metric": "val_accuracy", "mode": "max"},
        )
    )
    recorder = Recorder(study, open_storage(study.spec.storage))
    ticket = recorder.ask()
    last = {"epoch": 2, "val_accuracy": 0.7, "val_loss": 0.4, "train_seconds": 2.0}
    recorder.record_epoch(ticket.number, {"epoch": 1, "val_accuracy": 0.6})
    recorder.record_epoch(ticket.number, last)
    outcome = decide(last, objectives=["val_loss"], epochs=4, scheduler_stopped=True)
    recorder.finish(ticket.number, outcome, history=[])
    trial = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db").trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.values is None
    assert trial.user_attrs["val_loss"] == 0.4
    assert trial.intermediate_values == {1: 0.6, 2: 0.7}


@pytest.mark.parametrize(
    "searcher", [{"type": "random"}, {"type": "optuna-tpe", "n_startup_trials": 10}]
)
def test_a_resumed_search_continues_the_sequence(
    synthetic_study: Callable[..., Path], searcher: dict[str, object]
) -> None:
    """Three trials, a new run of three more: new parameters, the same as one run of six."""

    def run(name: str, sizes: list[int]) -> list[float]:
        study = load_study(synthetic_study(name=name, searcher=searcher))
        drawn = []
        for size in sizes:  # one Recorder per `hpsearch run`
            recorder = Recorder(study, open_storage(study.spec.storage))
            for _ in range(size):
                ticket = recorder.ask()
                drawn.append(float(ticket.params["x"]))
                last = _epochs(recorder, ticket.number, 4, complete=True)
                last["val_accuracy"] = 0.5 + 0.1 * ticket.params["x"]
                _finish(recorder, ticket.number, last)
        return drawn

    resumed = run("resumed", [3, 3])
    assert len(set(resumed)) == 6, f"the second run drew the first run's parameters: {resumed}"
    assert resumed == run("in_one_go", [6])
    assert resumed[:3] == run("first_three", [3])


def test_same_name_with_another_space_is_refused(
    synthetic_study: Callable[..., Path], project: Path
) -> None:
    study = load_study(synthetic_study())
    Recorder(study, open_storage(study.spec.storage)).ask()
    (project / "search_spaces" / "synthetic.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 5.0}\n"
    )
    changed = load_study(synthetic_study())
    with pytest.raises(InputError, match="different space") as info:
        Recorder(changed, open_storage(changed.spec.storage))
    assert info.value.key == "space"
    stored = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db")
    assert len(stored.get_trials()) == 1  # nothing lost, nothing added


def test_bad_storage_url_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open storage"):
        open_storage("nosuchdb://x/y")


def test_tpe_keeps_sampling_after_pruned_trials_with_curves(
    synthetic_study: Callable[..., Path],
) -> None:
    """Optuna's own multi-objective TPE raises on pruned trials that have per-epoch values."""
    study = load_study(synthetic_study(searcher={"type": "optuna-tpe", "n_startup_trials": 2}))
    recorder = Recorder(study, open_storage(study.spec.storage))
    for index in range(8):
        ticket = recorder.ask()
        result = _epochs(recorder, ticket.number, 1 + index % 4, complete=index % 2 == 0)
        if index % 2 == 0:
            result["val_accuracy"] = 0.5 + 0.01 * index
            _finish(recorder, ticket.number, result)
        else:
            _finish(recorder, ticket.number, result, scheduler_stopped=True)
    assert 0.0 <= recorder.ask().params["x"] <= 1.0
    states = [t.state for t in recorder.study.get_trials()]
    assert states.count(TrialState.PRUNED) == 4 and states.count(TrialState.COMPLETE) == 4


def test_sqlite_storage_runs_in_write_ahead_log_mode(recorder: Recorder) -> None:
    import sqlite3

    recorder.ask()
    with sqlite3.connect("results/test.db") as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_only_trials_of_a_dead_driver_are_ended(synthetic_study: Callable[..., Path]) -> None:
    """With heartbeats, a second driver leaves a live driver's RUNNING trial alone, and ends
    one whose driver stopped beating as cut (so it runs again)."""
    import sqlite3

    study = load_study(synthetic_study())
    live = Recorder(study, open_storage(study.spec.storage, heartbeat_seconds=1))
    dead, alive = live.ask(), live.ask()
    with sqlite3.connect("results/test.db") as connection:  # the dead driver's last beat: long ago
        connection.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour') "
            "WHERE trial_id = (SELECT trial_id FROM trials WHERE number = ?)",
            (dead.number,),
        )
    second = Recorder(study, open_storage(study.spec.storage, heartbeat_seconds=1))
    assert second.fail_leftovers() == [dead.number]
    trials = {t.number: t for t in second.study.get_trials()}
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["stop_reason"] == "interrupted"
    assert second.rerun_cut(5) == [dead.number]


def test_stored_errors_have_no_colour_codes(recorder: Recorder) -> None:
    ticket = recorder.ask()
    _finish(
        recorder, ticket.number, None, error="\x1b[36m(pid=1)\x1b[0m \x1b[1;31mValueError\x1b[0m"
    )
    error = recorder.study.get_trials()[0].user_attrs["error"]
    assert error == "(pid=1) ValueError"


def test_a_running_trial_without_a_heartbeat_left_long_ago_is_ended(
    synthetic_study: Callable[..., Path],
) -> None:
    """A RUNNING trial stored by an hpsearch before heartbeats: never beaten, started an hour
    ago. Optuna alone would take it for live forever."""
    import sqlite3

    study = load_study(synthetic_study())
    old = Recorder(study, open_storage(study.spec.storage))  # no heartbeat, as before
    ticket = old.ask()
    with sqlite3.connect("results/test.db") as connection:
        connection.execute(
            "UPDATE trials SET datetime_start = datetime('now', 'localtime', '-1 hour')"
        )
    fresh = Recorder(study, open_storage(study.spec.storage, heartbeat_seconds=1))
    recent = fresh.ask()
    assert fresh.fail_leftovers() == [ticket.number]
    states = {t.number: t.state for t in fresh.study.get_trials()}
    assert states == {ticket.number: TrialState.FAIL, recent.number: TrialState.RUNNING}


def test_a_trial_costs_a_handful_of_transactions(write_study: Callable[..., Path]) -> None:
    """Asking for a ten-parameter trial and ending it write a handful of statements, not one
    per parameter and attribute (against a PostgreSQL server each is a network round trip).
    Counted with SQLAlchemy's own event hooks."""
    from sqlalchemy import event

    study = load_study(write_study())  # the xgamma ResNet space: ten searched parameters
    storage = open_storage(study.spec.storage, heartbeat_seconds=10)
    recorder = Recorder(study, storage)
    counts = {"statements": 0, "writes": 0, "transactions": 0}

    def statement(*args: object) -> None:
        counts["statements"] += 1
        counts["writes"] += str(args[2]).lstrip().split()[0] in ("INSERT", "UPDATE", "DELETE")

    def commit(*args: object) -> None:
        counts["transactions"] += 1

    event.listen(storage.engine, "after_cursor_execute", statement)
    event.listen(storage.engine, "commit", commit)
    objectives = [o.metric for o in study.spec.objectives]
    for _ in range(2):  # the second trial reads a stored history
        counts.update(statements=0, writes=0, transactions=0)
        ticket = recorder.ask(lambda number: Path(f"trial_{number}.log"))
        assert len(ticket.params) >= 10
        asked = dict(counts)
        counts.update(statements=0, writes=0, transactions=0)
        last = {"epoch": 3, "val_accuracy": 0.8, "val_loss": 0.4, "train_seconds": 9.0}
        last |= {"test_accuracy": 0.79, "n_params": 1000, "complete": True, "accuracy": 0.8}
        recorder.finish(ticket.number, decide(last, objectives=objectives, epochs=3), [last])
        # Ask: create the trial (insert, number), its parameters, seed and log file, heartbeat.
        # Reads (the stored history for the searcher) are not counted: they grow with it.
        assert asked["writes"] <= 5 and asked["transactions"] <= 6, asked
        # End: the searcher's after_trial reads the trial; attributes, history, values and
        # state are written in one transaction.
        assert counts["transactions"] <= 2, counts
        assert counts["writes"] <= 4 and counts["statements"] <= 12, counts

    stored = optuna.load_study(study_name=study.spec.name, storage=study.spec.storage)
    first, second = stored.get_trials()
    assert first.state == second.state == TrialState.COMPLETE
    assert first.values == pytest.approx([last[m] for m in objectives])
    assert len(first.params) >= 10
    assert first.user_attrs["log_file"] == "trial_0.log"
    assert first.user_attrs["test_accuracy"] == 0.79
    assert second.user_attrs["seed"] == ticket.seed
    assert "history" not in first.user_attrs
    assert first.system_attrs["hpsearch:history"][0]["val_loss"] == 0.4


def _open_at_once(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_drivers_opening_a_new_sqlite_storage_at_once_all_succeed(tmp_path: Path) -> None:
    """Several processes open one new SQLite storage at the same moment (two drivers, or a
    driver and a reader polling it): each creates Optuna's tables if missing, and the slower
    ones must not fail on the faster one's tables."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    failures = []
    for attempt in range(4):
        url = f"sqlite:///{tmp_path}/race{attempt}.db"
        barrier, results = context.Barrier(4), context.Queue()
        workers = [
            context.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        failures += [r for r in (results.get(timeout=5) for _ in workers) if r != "ok"]
    assert failures == []


def test_asking_reads_the_stored_trials_once_not_once_per_parameter(
    write_study: Callable[..., Path],
) -> None:
    """TPE with ``constant_liar`` re-reads every trial for every parameter it samples (Optuna
    skips its per-ask cache then, as other processes' running trials may change); hpsearch
    asks from one process, so one snapshot per ask serves all ten parameters. Counted as
    statements reading the trials table, with SQLAlchemy's event hooks."""
    from sqlalchemy import event

    study = load_study(write_study(searcher={"type": "optuna-tpe", "n_startup_trials": 2}))
    storage = open_storage(study.spec.storage)
    recorder = Recorder(study, storage)
    objectives = [o.metric for o in study.spec.objectives]
    for accuracy in (0.6, 0.7, 0.8):
        ticket = recorder.ask()
        last = {"epoch": 3, "val_accuracy": accuracy, "train_seconds": 9.0, "complete": True}
        recorder.finish(ticket.number, decide(last, objectives=objectives, epochs=3), [last])
    reads = []

    def statement(*args: object) -> None:
        text = " ".join(str(args[2]).split())
        if text.startswith("SELECT") and "FROM trials" in text:
            reads.append(text)

    event.listen(storage.engine, "after_cursor_execute", statement)
    ticket = recorder.ask()
    assert len(ticket.params) >= 10
    # TPE modelled this ask (3 finished trials > 2 startup ones), reading the history.
    assert reads
    # The count, the waiting queue, the new trial's number and row, one snapshot of the
    # history (17 reads before: one per sampled parameter and more).
    assert len(reads) <= 6, "\n".join(r[:150] for r in reads)


def _commits(storage: Any) -> list[int]:
    """A list that grows by one per committed transaction that wrote to ``storage``."""
    from sqlalchemy import event

    commits: list[int] = []
    wrote = [False]

    def statement(*args: object) -> None:
        wrote[0] = wrote[0] or str(args[2]).lstrip().startswith(("INSERT", "UPDATE", "DELETE"))

    def commit(*_: object) -> None:
        if wrote[0]:
            commits.append(1)
        wrote[0] = False

    event.listen(storage.engine, "after_cursor_execute", statement)
    event.listen(storage.engine, "commit", commit)
    return commits


def test_quick_epochs_are_written_with_the_ending_in_one_transaction(recorder: Recorder) -> None:
    """A trial whose epochs come faster than the live view refreshes costs one write for all
    of them and its ending, not one per epoch (5 epochs + ending were 6 transactions)."""
    ticket = recorder.ask()
    commits = _commits(recorder.storage)
    last = _epochs(recorder, ticket.number, 4, complete=True)
    _finish(recorder, ticket.number, last)
    assert len(commits) == 1
    stored = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db")
    trial = stored.trials[ticket.number]
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == pytest.approx({1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9})


def test_an_epoch_after_a_pause_is_stored_at_once_for_the_live_view(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs a second apart (any real training) land in storage as they come, so that
    ``hpsearch dashboard`` and the progress of another driver see the curve live."""
    import hpsearch.recorder as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    ticket = recorder.ask()
    for epoch in (1, 2):
        clock[0] += 1.0
        recorder.record_epoch(ticket.number, {"epoch": epoch, "val_accuracy": 0.5 + epoch / 10})
        stored = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db")
        assert stored.trials[ticket.number].intermediate_values == pytest.approx(
            {e: 0.5 + e / 10 for e in range(1, epoch + 1)}
        )


def test_each_ask_reads_the_budget_once(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's searcher looks at the study's shared budget under the study lock before
    each ask; the cheap look before it reuses that reading instead of a second full read of
    the trials (there were two per ask)."""
    from hpsearch.lifecycle import FailureStreak, RunStop
    from hpsearch.runner._driver import RecorderSearcher, RunSummary

    reads = []
    budget_use = recorder.budget_use
    monkeypatch.setattr(recorder, "budget_use", lambda: reads.append(1) or budget_use())
    summary = RunSummary()
    searcher = RecorderSearcher(
        recorder, summary, RunStop(FailureStreak(3)), remaining=10, concurrency=4, budget=10
    )
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert all(isinstance(config, dict) for config in configs)
    assert len(summary.numbers) == 4
    assert len(reads) <= 4 + 1


def test_an_epoch_written_again_replaces_the_stored_value(recorder: Recorder) -> None:
    """Epoch values go in with an upsert (a step reported again replaces the old row), and
    non-finite values keep Optuna's encoding."""
    from hpsearch.results import _rdb

    ticket = recorder.ask()
    trial_id = recorder.study.trials[ticket.number]._trial_id
    _rdb.write(recorder.storage, trial_id, intermediate={1: 0.5})
    _rdb.write(recorder.storage, trial_id, intermediate={1: 0.7, 2: float("inf")})
    stored = optuna.load_study(study_name="synthetic", storage="sqlite:///results/test.db")
    assert stored.trials[ticket.number].intermediate_values == {1: 0.7, 2: float("inf")}


@pytest.mark.parametrize("kind", ["sqlite", "in-memory"])
def test_budget_use_counts_what_the_budget_counts(
    synthetic_study: Callable[..., Path], kind: str
) -> None:
    """COMPLETE, PRUNED and the objective's failures use the budget; trials the run cut
    (interrupted, out of time, worker lost) do not; RUNNING ones are counted apart. SQLite's
    count is the database's (a query), checked against :func:`counts_against_budget` trial
    by trial; other storages count loaded trials."""
    from hpsearch import lifecycle

    study = load_study(synthetic_study())
    storage = open_storage(study.spec.storage) if kind == "sqlite" else None
    recorder = Recorder(study, storage or optuna.storages.InMemoryStorage())

    tickets = [recorder.ask() for _ in range(7)]
    last = _epochs(recorder, tickets[0].number, 4, complete=True)
    _finish(recorder, tickets[0].number, last)
    _finish(
        recorder,
        tickets[1].number,
        _epochs(recorder, tickets[1].number, 1, complete=False),
        scheduler_stopped=True,
    )
    _finish(recorder, tickets[2].number, None, error="Traceback ...\nValueError: boom")
    _finish(recorder, tickets[3].number, None, run_stop=lifecycle.INTERRUPTED)
    _finish(recorder, tickets[4].number, None, lost="worker died")
    assert recorder.budget_use() == (3, 2)
    trials = recorder.study.get_trials()
    assert recorder.budget_use() == (
        sum(
            lifecycle.counts_against_budget(t.state.name, t.user_attrs.get("stop_reason"))
            for t in trials
        ),
        sum(t.state == TrialState.RUNNING for t in trials),
    )


def test_the_searcher_hears_of_the_ending_with_the_epochs_not_written_yet(
    write_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs that wait for the ending's write are part of the trial the sampler's
    ``after_trial`` hook is given, as they would be had each been written at once."""
    study = load_study(write_study(searcher={"type": "optuna-tpe", "n_startup_trials": 2}))
    recorder = Recorder(study, open_storage(study.spec.storage))
    ticket = recorder.ask()
    seen: list[dict[int, float]] = []
    sampler = recorder.study.sampler
    monkeypatch.setattr(
        sampler, "after_trial", lambda s, trial, *a: seen.append(trial.intermediate_values)
    )
    last: dict[str, object] = {}
    for epoch in (1, 2, 3):
        last = {"epoch": epoch, "val_accuracy": epoch / 10, "train_seconds": 1.0 * epoch}
        recorder.record_epoch(ticket.number, last)
    last["complete"] = True
    objectives = [o.metric for o in study.spec.objectives]
    recorder.finish(ticket.number, decide(last, objectives=objectives, epochs=3), [last])
    assert seen == [pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})]
