"""CLI paths beside `run`: report from storage, dashboard serving the storage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from hpsearch.cli import main
from hpsearch.lifecycle import decide
from hpsearch.recorder import Recorder, open_storage
from hpsearch.spec import load_study


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_complete_trial(path: Path) -> None:
    study = load_study(path)
    recorder = Recorder(study, open_storage(study.spec.storage))
    ticket = recorder.ask()
    recorder.record_epoch(ticket.number, {"epoch": 1, "val_accuracy": 0.8})
    result = {
        "epoch": 4,
        "val_accuracy": 0.81,
        "train_seconds": 3.5,
        "test_accuracy": 0.79,
        "n_params": 321,
        "complete": True,
    }
    outcome = decide(result, objectives=["val_accuracy", "train_seconds"], epochs=4)
    recorder.finish(ticket.number, outcome, [])


def test_report_reads_storage_and_writes_the_plot(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_study()
    _one_complete_trial(path)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0.8100" in out and "0.7900" in out and "321" in out
    html = Path("results/synthetic/pareto.html").read_text()
    # The page's Plotly.newPlot(id, data, ...) call: the one trial is the front, at its values.
    decoder = json.JSONDecoder()
    start = html.rindex("Plotly.newPlot(") + len("Plotly.newPlot(")
    _, end = decoder.raw_decode(html, start + len(html[start:]) - len(html[start:].lstrip()))
    rest = html[end:].lstrip().removeprefix(",")
    data, _ = decoder.raw_decode(rest.lstrip())
    points = {trace["name"]: list(zip(trace["x"], trace["y"], strict=True)) for trace in data}
    assert points == {
        "complete (dominated) [0]": [],
        "Pareto front [1]": [(3.5, 0.81)],
        "stopped early by the scheduler (partial values, not on the front) [0]": [],
    }


def test_report_of_unknown_study_exits_2(
    synthetic_study: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_study()
    assert main(["report", str(path), "--set", "name=never_ran"]) == 2
    assert "never_ran" in capsys.readouterr().err


def test_dashboard_serves_the_study(synthetic_study: Callable[..., Path]) -> None:
    path = synthetic_study()
    _one_complete_trial(path)
    port = _free_port()
    cli = Path(sys.executable).with_name("hpsearch")
    server = subprocess.Popen(
        [str(cli), "dashboard", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert body is not None, "dashboard did not answer within 30 s"
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["synthetic"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_run_simulates_missing_data_first(write_study: Callable[..., Path]) -> None:
    import h5py
    import numpy as np
    from rich.console import Console

    from hpsearch.prepare import prepare

    path = write_study(data__path="data/new.h5", data__simulate={"events": 300})
    prepared = prepare(load_study(path), Console(stderr=True))
    assert prepared.info.n_events == 300
    assert prepared.info.attrs["task"] == "xgamma"
    with h5py.File("data/new.h5", "r") as file:
        first = np.asarray(file["waveforms"])
    # The simulation seed derives from the study's master seed: a rerun makes the same file.
    Path("data/new.h5").unlink()
    prepare(load_study(path), Console(stderr=True))
    with h5py.File("data/new.h5", "r") as file:
        assert np.array_equal(first, np.asarray(file["waveforms"]))


def test_baseline_scores_the_cut_on_the_study_test_split(
    write_study: Callable[..., Path], xgamma_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(data__path=str(xgamma_file))
    assert main(["baseline", str(path)]) == 0
    err = " ".join(capsys.readouterr().out.split())  # the result, on stdout; rich wraps
    assert "on 90 events" in err  # 15% of 600: the study's own test split
    accuracy = float(err.split("test accuracy")[1].split()[0])
    assert 0.6 < accuracy < 0.95


def test_the_live_hint_names_the_storage_the_run_records_to(
    write_study: Callable[..., Path],
) -> None:
    """`hpsearch dashboard STUDY` reads the storage the study file names; a run given
    another one (``--storage``, ``--set storage=...``, as `curves record` runs suggest) must
    say so in its "Watch it live" hint, or the hint opens a storage without this run."""
    from hpsearch.runner._driver import _dashboard_command

    path = write_study()
    assert _dashboard_command(load_study(path)) == f"hpsearch dashboard {path}"
    moved = load_study(path, storage="postgresql+psycopg2://alice:secret@db/hp")
    assert _dashboard_command(moved) == (
        f"hpsearch dashboard {path} --storage postgresql+psycopg2://alice:***@db/hp"
    )
    elsewhere = load_study(path, ["storage=sqlite:///elsewhere.db"])
    assert _dashboard_command(elsewhere).endswith(" --storage sqlite:///elsewhere.db")
