"""Replay: whole searches against a learning-curve table, on a simulated clock, no training.

The tables here are tiny and written by hand (rows of the synthetic space's ``x``), so every
value a replayed trial must store, every moment it must run at and every promotion the
schedulers must make is known in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from rich.console import Console

from hpsearch.cli import main
from hpsearch.curves import REPLAY_KEYS, WALL, CurveTable, Neighbours
from hpsearch.recorder import Recorder, open_storage
from hpsearch.results.storage import trial_history
from hpsearch.runner._replay import ReplaySummary, replay_study
from hpsearch.spec import load_space, load_study
from synthetic_runs import peak_overlap, stored_trials, write_space

STORAGE = "sqlite:///results/test.db"


def make_table(
    study: Path,
    rows: Sequence[tuple[float, Sequence[float], Sequence[float], Sequence[float]]],
) -> CurveTable:
    """A table of the study's space: per row ``x``, val_accuracy, train_seconds, epoch wall s."""
    space = load_study(study).space
    epochs = len(rows[0][1])
    accuracy = np.array([r[1] for r in rows], dtype=float)
    train = np.array([r[2] for r in rows], dtype=float)
    wall = np.cumsum(np.array([r[3] for r in rows], dtype=float), axis=1)
    return CurveTable(
        params=[{"x": x} for x, *_ in rows],
        metrics={"val_accuracy": accuracy, "train_seconds": train, WALL: wall},
        state=["COMPLETE"] * len(rows),
        error=[""] * len(rows),
        seed=list(range(len(rows))),
        meta={
            "study": "synthetic",
            "space_file": str(space.source),
            "space_fingerprint": space.fingerprint(),
            "epochs": epochs,
            "concurrency": 2,
        },
    )


@pytest.fixture
def ten_rows(synthetic_study: Callable[..., Path]) -> tuple[Path, Path, CurveTable]:
    """Rows at x = 0.0, 0.1, ..., 0.9: accuracy x/epoch-ramp, seconds 1 + x per epoch."""
    write_space()
    study = synthetic_study(scheduler={"type": "fifo"})
    rows = [
        (
            x,
            [x * e / 4 for e in range(1, 5)],
            [(1 + x) * e for e in range(1, 5)],
            [1.0 + x] * 4,
        )
        for x in np.round(np.linspace(0.0, 0.9, 10), 1)
    ]
    table = make_table(study, rows)
    path = table.write(Path("curves.h5"))
    return study, path, table


def test_a_table_reads_back_as_written(ten_rows: tuple[Path, Path, CurveTable]) -> None:
    _, path, table = ten_rows
    again = CurveTable.read(path)
    assert again.params == table.params and again.state == table.state
    assert again.meta["space_fingerprint"] == table.meta["space_fingerprint"]
    for name, array in table.metrics.items():
        np.testing.assert_array_equal(again.metrics[name], array)
    assert again.epoch_seconds(3).tolist() == pytest.approx([1.3] * 4)
    assert again.report(9, 2) == {
        "val_accuracy": pytest.approx(0.45),
        "train_seconds": pytest.approx(3.8),
        WALL: pytest.approx(3.8),
        "epoch": 2,
    }


def test_a_replay_lands_an_ordinary_study_of_the_rows_values(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    study, path, table = ten_rows
    code = main(
        ["run", str(study), "--replay", str(path), "--set", "budget.trials=12", "--workers", "2"]
    )
    assert code == 0
    trials = stored_trials(STORAGE, "synthetic-replay")
    assert len(trials) == 12 and {t.state for t in trials.values()} == {
        optuna.trial.TrialState.COMPLETE
    }
    rows = [trial.user_attrs["replay_row"] for _, trial in sorted(trials.items())]
    # A row answers once until all ten have run (which rows, and the stored parameters: see
    # test_a_row_answers_once_per_study_resumed_or_not).
    assert sorted(rows[:10]) == list(range(10))
    for row, (_, trial) in zip(rows, sorted(trials.items()), strict=True):
        assert trial.params == table.params[row]
        assert trial.values[0] == pytest.approx(table.metrics["val_accuracy"][row, -1])
        assert trial.values[1] == pytest.approx(table.metrics["train_seconds"][row, -1])
        history = trial_history(trial)
        assert [h["val_accuracy"] for h in history] == pytest.approx(
            table.metrics["val_accuracy"][row].tolist()
        )
        assert not set(REPLAY_KEYS) & {key for h in history for key in h}
    stored = optuna.load_study(study_name="synthetic-replay", storage=STORAGE)
    assert stored.user_attrs["replay"]["rows"] == 10
    assert stored.user_attrs["replay"]["workers"] == 2
    # The report's provenance says the trials were replayed, not trained.
    from hpsearch.report_page import _runs

    assert "replayed (no training" in _runs(stored.user_attrs["runs"])
    # The replay went into its own study: the study's own name holds no simulated trial.
    assert "synthetic" not in optuna.get_all_study_names(STORAGE)


def _replay(
    study: Path,
    table: CurveTable,
    *,
    workers: int,
    enqueue: Sequence[float] = (),
    overrides: Sequence[str] = (),
) -> ReplaySummary:
    loaded = load_study(study, list(overrides))
    recorder = Recorder(loaded, open_storage(loaded.spec.storage))
    recorder.enqueue([(f"x={x}", {"x": x}) for x in enqueue])
    return replay_study(loaded, recorder, table, workers=workers, console=Console(quiet=True))


def test_the_simulated_clock_runs_trials_side_by_side_for_their_recorded_seconds(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    study, _, table = ten_rows
    summary = _replay(study, table, workers=3, overrides=["budget.trials=9"])
    intervals = [(t.started, t.ended) for t in summary.trials]
    assert peak_overlap(intervals) == 3
    for trial in summary.trials:
        assert trial.seconds == pytest.approx(float(table.epoch_seconds(trial.row).sum()))
    # No slot idles: each trial starts when an earlier one ends (or at 0), and the run ends
    # with its last trial.
    ends = sorted(t.ended for t in summary.trials)
    for trial in summary.trials:
        assert trial.started == 0.0 or any(trial.started == pytest.approx(e) for e in ends)
    assert summary.clock == pytest.approx(max(ends))
    assert summary.wall_seconds < summary.clock  # simulated, not slept


def test_asha_promotions_on_replayed_curves_are_the_known_ones(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    """One trial at a time, constant curves of accuracy 0.5, 0.9, 0.1, 0.7 (rows by x).

    ASHA (grace 1, reduction factor 2, rungs at epochs 1 and 2) stops a trial below the
    median of the rung's earlier results: 0.5 and 0.9 go on (nothing or less above them),
    0.1 meets the median 0.7 of (0.5, 0.9) and stops at epoch 1, 0.7 meets the median 0.5 at
    rung 1 and the median 0.7 at rung 2, and goes on.
    """
    study, _, _ = ten_rows
    accuracy = {0.5: 0.5, 0.9: 0.9, 0.1: 0.1, 0.7: 0.7}
    rows = [(x, [accuracy.get(x, 0.0)] * 4, [1.0, 2.0, 3.0, 4.0], [1.0] * 4) for x in accuracy]
    table = make_table(study, rows)
    summary = _replay(
        study,
        table,
        workers=1,
        enqueue=list(accuracy),
        overrides=[
            "budget.trials=4",
            "scheduler={type: asha, metric: val_accuracy, grace_period: 1, reduction_factor: 2}",
        ],
    )
    ended = {t.number: (t.state, t.epochs) for t in summary.trials}
    assert ended == {0: ("COMPLETE", 4), 1: ("COMPLETE", 4), 2: ("PRUNED", 1), 3: ("COMPLETE", 4)}
    stored = stored_trials(STORAGE, "synthetic")
    assert stored[2].state == optuna.trial.TrialState.PRUNED
    assert stored[2].user_attrs["epochs_reached"] == 1


def test_moasha_keeps_the_fast_point_of_the_front_that_asha_stops(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    """Accurate-and-slow first, then fast-but-less-accurate, then dominated.

    ASHA on accuracy alone stops the fast trial at rung 1 (0.5 is below the 0.9 before it).
    MOASHA ranks by (val_accuracy, train_seconds): the fast trial is on the rung's front and
    goes on to COMPLETE; the third, worse and slower than the first, is stopped.
    """
    study, _, _ = ten_rows
    rows = [
        (0.1, [0.9] * 4, [10.0, 20.0, 30.0, 40.0], [10.0] * 4),
        (0.5, [0.5] * 4, [1.0, 2.0, 3.0, 4.0], [1.0] * 4),
        (0.9, [0.4] * 4, [20.0, 40.0, 60.0, 80.0], [20.0] * 4),
    ]
    table = make_table(study, rows)
    scheduler = "{type: %s, metric: val_accuracy, grace_period: 1, reduction_factor: 2}"
    states = {}
    for kind in ("asha", "moasha"):
        summary = _replay(
            study,
            table,
            workers=1,
            enqueue=[0.1, 0.5, 0.9],
            overrides=["budget.trials=3", f"name={kind}", f"scheduler={scheduler % kind}"],
        )
        states[kind] = [t.state for t in sorted(summary.trials, key=lambda t: t.number)]
    assert states["asha"] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert states["moasha"] == ["COMPLETE", "COMPLETE", "PRUNED"]


def test_hyperband_brackets_follow_the_master_seed_not_numpys_global_state(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    """Ray's asynchronous HyperBand draws each trial's bracket from numpy's global generator.

    hpsearch draws it from the trial's own seed, so the same study replays (and runs) the
    same, whatever else in the process has drawn from numpy before.
    """
    study, _, table = ten_rows
    scheduler = "scheduler={type: hyperband, grace_period: 1, reduction_factor: 2, brackets: 3}"
    ended = []
    for run, global_seed in enumerate((1, 2)):
        np.random.seed(global_seed)
        summary = _replay(
            study,
            table,
            workers=2,
            overrides=["budget.trials=20", f"name=hb{run}", scheduler],
        )
        ended.append([(t.number, t.state, t.epochs) for t in summary.trials])
    assert ended[0] == ended[1]
    assert {"PRUNED", "COMPLETE"} <= {state for _, state, _ in ended[0]}


def test_a_row_answers_once_per_study_resumed_or_not(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    """Proposals near x = 0.5 get the nearest row not yet run, also after a resume.

    Each trial is stored with its row's parameters, and the proposal's distance from them.
    """
    study, _, table = ten_rows
    first = _replay(
        study, table, workers=1, enqueue=[0.52, 0.48, 0.51], overrides=["budget.trials=3"]
    )
    rows = {t.number: (t.row, round(t.distance, 6)) for t in first.trials}
    assert rows == {0: (5, 0.02), 1: (4, 0.08), 2: (6, 0.09)}
    again = _replay(study, table, workers=1, enqueue=[0.53], overrides=["budget.trials=4"])
    assert [(t.number, t.row) for t in again.trials] == [(3, 7)]
    stored = stored_trials(STORAGE, "synthetic")
    assert {n: t.params["x"] for n, t in stored.items()} == {0: 0.5, 1: 0.4, 2: 0.6, 3: 0.7}
    assert {n: round(t.user_attrs["replay_distance"], 6) for n, t in stored.items()} == {
        0: 0.02,
        1: 0.08,
        2: 0.09,
        3: 0.17,
    }


def test_the_time_budget_is_spent_on_the_simulated_clock(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    study, _, table = ten_rows
    summary = _replay(study, table, workers=2, overrides=["budget.trials=50", "budget.seconds=20"])
    assert summary.stop_reason == "time_budget"
    assert summary.clock == pytest.approx(20.0)
    cut = [t for t in summary.trials if t.ended == pytest.approx(20.0) and t.state == "FAIL"]
    assert cut and all(t.ended <= 20.0 + 1e-9 for t in summary.trials)
    stored = stored_trials(STORAGE, "synthetic")
    assert {stored[t.number].user_attrs["stop_reason"] for t in cut} == {"time_budget"}


def test_a_recorded_failure_is_replayed_as_one(ten_rows: tuple[Path, Path, CurveTable]) -> None:
    study, _, _ = ten_rows
    rows = [(0.2, [0.5, 0.6, np.nan, np.nan], [1.0, 2.0, np.nan, np.nan], [1.0, 1.0, 0, 0])]
    table = make_table(study, rows)
    table.metrics[WALL][0, 2:] = np.nan
    table.state[0] = "FAIL"
    table.error[0] = "training loss became nan in epoch 3"
    summary = _replay(study, table, workers=1, overrides=["budget.trials=1"])
    (trial,) = summary.trials
    assert (trial.state, trial.epochs, trial.seconds) == ("FAIL", 2, 2.0)
    stored = stored_trials(STORAGE, "synthetic")[0]
    assert "training loss became nan" in stored.user_attrs["error"]


def test_nearest_neighbour_matches_the_branch_before_the_numbers(project: Path) -> None:
    space = load_space("search_spaces/xgamma_families.yaml")
    base = {
        "optimizer": "adam",
        "optimizer.adam.learning_rate": 1e-3,
        "lr_schedule": "constant",
        "batch_size": 64,
        "regularisation.dropout": 0.1,
        "regularisation.l2": 1e-5,
        "regularisation.noise_std": 0.1,
    }
    lstm = {**base, "model": "lstm", "model.lstm.units": 16, "model.lstm.layers": 1}
    lstm |= {"model.lstm.bidirectional": False, "model.lstm.downsample": 8}
    cnn = {**base, "model": "cnn", "model.cnn.layers": 3, "model.cnn.filters": 16}
    cnn |= {"model.cnn.kernel_size": 5, "model.cnn.pooling": "max", "model.cnn.downsample": 2}
    far_lstm = {**lstm, "optimizer.adam.learning_rate": 1e-2, "model.lstm.units": 48}
    table = CurveTable(
        params=[cnn, far_lstm],
        metrics={WALL: np.ones((2, 1))},
        state=["COMPLETE"] * 2,
        error=[""] * 2,
        seed=[0, 1],
    )
    neighbours = Neighbours(table, space)
    # An LSTM is answered by the LSTM row, however far its numbers, not by the CNN.
    assert neighbours.nearest(lstm)[0] == 1
    assert neighbours.nearest(cnn) == (0, 0.0)
    # Log-scaled (adam's rate is searched on [3e-4, 1e-2], log): x3 and /3 are equal steps.
    d = neighbours.distances
    step_up = d({**cnn, "optimizer.adam.learning_rate": 3e-3})[0]
    step_down = d({**cnn, "optimizer.adam.learning_rate": 1e-3 / 3})[0]
    assert step_up == pytest.approx(step_down) and step_up > 0


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"budget.epochs": 8}, "budget.epochs"),
        ({"space": "other"}, "space_fingerprint"),
        ({"objective": "val_loss"}, "metrics"),
    ],
)
def test_a_table_that_cannot_answer_the_study_is_refused_with_exit_2(
    ten_rows: tuple[Path, Path, CurveTable],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    key: str,
) -> None:
    study, path, _ = ten_rows
    overrides = []
    if "budget.epochs" in change:
        overrides = ["--set", "budget.epochs=8"]
    elif "space" in change:
        write_space(sleep=0.01)  # another constant: another space
    else:
        overrides = ["--set", "objectives=[{metric: val_loss, direction: minimize}]"]
    code = main(["run", str(study), "--replay", str(path), *overrides])
    err = capsys.readouterr().err
    assert code == 2 and key in err and "fix:" in err
    assert not Path("results/test.db").exists()  # refused before storage was opened


def test_no_table_at_the_path_is_exit_2(
    ten_rows: tuple[Path, Path, CurveTable], capsys: pytest.CaptureFixture[str]
) -> None:
    study, _, _ = ten_rows
    assert main(["run", str(study), "--replay", "missing.h5"]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_curves_record_then_replay(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Record the synthetic objective's curves (no training), then replay a search on them."""
    write_space(sleep=0.01)
    study = synthetic_study()
    assert main(["curves", "record", str(study), "--configs", "5", "--out", "t.h5"]) == 0
    table = CurveTable.read("t.h5")
    assert table.rows == 5 and table.epochs == 4 and set(table.state) == {"COMPLETE"}
    recorded = stored_trials(STORAGE, "synthetic-curves")
    assert [p["x"] for p in table.params] == [recorded[n].params["x"] for n in range(5)]
    # Every trial ran all its epochs (no early stopping), each epoch's wall time taken.
    assert np.all(np.diff(table.metrics[WALL], axis=1) > 0)
    assert table.meta["command"].startswith("hpsearch curves record")
    assert main(["curves", "show", "t.h5"]) == 0
    assert "5 configurations x 4 epochs" in capsys.readouterr().out
    assert main(["run", str(study), "--replay", "t.h5", "--set", "budget.trials=8"]) == 0
    replayed = stored_trials(STORAGE, "synthetic-replay")
    assert len(replayed) == 8


def test_optuna_median_prunes_below_the_completed_trials_median(
    ten_rows: tuple[Path, Path, CurveTable],
) -> None:
    """Optuna's MedianPruner, after 2 completed trials (min_samples): 0.5 and 0.9 complete
    (too few completed before them), 0.6 is below their median 0.7 at epoch 1 and is pruned,
    0.8 is above it and completes (the pruned 0.6 does not count: only completed trials do).
    """
    study, _, _ = ten_rows
    accuracy = {0.5: 0.5, 0.9: 0.9, 0.6: 0.6, 0.8: 0.8}
    rows = [(x, [a] * 4, [1.0, 2.0, 3.0, 4.0], [1.0] * 4) for x, a in accuracy.items()]
    summary = _replay(
        study,
        make_table(study, rows),
        workers=1,
        enqueue=list(accuracy),
        overrides=["budget.trials=4", "scheduler={type: optuna-median, min_samples: 2}"],
    )
    ended = {t.number: (t.state, t.epochs) for t in summary.trials}
    assert ended == {0: ("COMPLETE", 4), 1: ("COMPLETE", 4), 2: ("PRUNED", 1), 3: ("COMPLETE", 4)}
