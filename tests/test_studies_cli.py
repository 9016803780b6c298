"""`hpsearch ls`, `show` and `delete` on a synthetic study whose values are set by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpsearch.cli import main
from hpsearch.recorder import open_storage
from hpsearch.results.storage import study_names
from test_export import VALUES, _fill

URL = "sqlite:///results/test.db"


@pytest.fixture
def filled(synthetic_study: Callable[..., Path]) -> Path:
    path = synthetic_study()
    _fill(path, VALUES)
    return path


def test_ls_lists_states_best_values_and_activity(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", "--storage", URL]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out
    assert "COMPLETE 4" in out and "PRUNED 1" in out
    # Each objective's best over COMPLETE trials: 0.9 accuracy (trial 0), 1 s (trial 2).
    assert "val_accuracy 0.9 (max)" in out and "train_seconds 1 (min)" in out


def test_ls_of_missing_storage_exits_2(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--storage", "sqlite:///results/other.db"]) == 2
    assert "test.db" in capsys.readouterr().err
    assert not Path("results/other.db").exists()


def test_show_prints_front_with_hyperparameters(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "synthetic", "--storage", URL]) == 0
    out = capsys.readouterr().out
    assert "Pareto-optimal trials of 'synthetic'" in out
    assert "Hyperparameters" in out and " x " in out
    assert "COMPLETE 4, PRUNED 1" in out


def test_show_of_study_file(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(filled)]) == 0
    assert "0.8800" in capsys.readouterr().out  # trial 1, on the front


def test_delete_asks_and_keeps_on_no(
    filled: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["delete", "synthetic", "--storage", URL]) == 1
    assert study_names(open_storage(URL)) == ["synthetic"]


def test_delete_on_yes(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["delete", "synthetic", "--storage", URL]) == 0
    assert study_names(open_storage(URL)) == []


def test_delete_with_yes_flag_and_unknown_name(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["delete", "nope", "--storage", URL, "--yes"]) == 2
    assert "studies there: synthetic" in capsys.readouterr().err
    assert main(["delete", str(filled), "--yes"]) == 0
    assert study_names(open_storage(URL)) == []


@pytest.mark.parametrize("command", ["ls", "show", "delete"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"hpsearch {command}" in out
