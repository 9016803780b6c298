"""The Recorder against a real SQLite storage, read back with plain Optuna."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.errors import InputError
from hpsearch.recorder import Recorder, open_storage
from hpsearch.spec import load_study


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


def test_complete_pruned_fail_read_back_with_plain_optuna(recorder: Recorder) -> None:
    complete, pruned, failed = recorder.ask(), recorder.ask(), recorder.ask()
    recorder.record_complete(
        complete.number,
        _epochs(recorder, complete.number, 4, complete=True),
        history=[{"epoch": 1}],
    )
    recorder.record_pruned(
        pruned.number,
        _epochs(recorder, pruned.number, 1, complete=False),
        history=[],
        reason="scheduler",
    )
    recorder.record_failed(failed.number, "Traceback ...\nValueError: boom", None, history=[])

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
    recorder.record_complete(ticket.number, _epochs(recorder, ticket.number, 4, complete=True), [])
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
    recorder.record_complete(
        ticket.number,
        {"epoch": 4, "val_accuracy": float("nan"), "train_seconds": 3.0, "complete": True},
        [],
    )
    trial = recorder.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert "val_accuracy" in trial.user_attrs["error"]


def test_leftover_running_trials_become_fail_and_budget_counts(
    synthetic_study: Callable[..., Path],
) -> None:
    study = load_study(synthetic_study())
    first = Recorder(study, open_storage(study.spec.storage))
    first.ask()  # a run killed here leaves this trial RUNNING
    again = Recorder(study, open_storage(study.spec.storage))
    assert again.n_finished() == 0
    assert again.fail_leftovers() == [0]
    assert again.n_finished() == 1
    trial = again.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert "interrupted" in trial.user_attrs["error"]


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
            recorder.record_complete(ticket.number, result, [])
        else:
            recorder.record_pruned(ticket.number, result, [], reason="scheduler")
    assert 0.0 <= recorder.ask().params["x"] <= 1.0
    states = [t.state for t in recorder.study.get_trials()]
    assert states.count(TrialState.PRUNED) == 4 and states.count(TrialState.COMPLETE) == 4
