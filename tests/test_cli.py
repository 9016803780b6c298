"""CLI paths beside `run`: report from storage, dashboard serving the storage."""

from __future__ import annotations

import gc
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


def test_the_console_script_freezes_the_heap_only_on_its_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hpsearch.cli as cli

    events: list[str] = []
    monkeypatch.setattr(cli, "main", lambda: events.append("main") or 3)
    monkeypatch.setattr(gc, "freeze", lambda: events.append("freeze"))
    with pytest.raises(SystemExit) as exited:
        cli.console_main()
    assert exited.value.code == 3
    assert events == ["main", "freeze"]


def test_the_console_script_prints_and_writes_everything_before_it_exits(
    synthetic_study: Callable[..., Path],
) -> None:
    # The heap is frozen on the way out (console_main): what the command printed and wrote
    # must all be there once the process has gone.
    path = synthetic_study()
    _one_complete_trial(path)
    cli = Path(sys.executable).with_name("hpsearch")
    done = subprocess.run(
        [str(cli), "report", str(path)], capture_output=True, text=True, check=True
    )
    assert "0.8100" in done.stdout and "0.7900" in done.stdout and "321" in done.stdout
    assert Path("results/synthetic/pareto.html").read_text().rstrip().endswith("</html>")


def test_a_frozen_heap_is_unfrozen_when_its_body_ends_even_by_an_error() -> None:
    from hpsearch.cli._common import frozen_heap

    before = gc.get_freeze_count()
    with pytest.raises(RuntimeError), frozen_heap():
        assert gc.get_freeze_count() > before
        raise RuntimeError("the run failed")
    assert gc.get_freeze_count() == before


def test_a_run_freezes_what_it_loaded_only_while_it_runs(
    synthetic_study: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frozen during the run, for speed; unfrozen after, or every in-process run (tests, a
    # notebook) would keep its garbage for good.
    import hpsearch.runner
    from hpsearch.runner._driver import RunSummary

    frozen_during: list[int] = []

    def run_study(*_args: object, **_kwargs: object) -> RunSummary:
        frozen_during.append(gc.get_freeze_count())
        return RunSummary()

    monkeypatch.setattr(hpsearch.runner, "run_study", run_study)
    before = gc.get_freeze_count()
    main(["run", str(synthetic_study())])
    assert frozen_during and frozen_during[0] > before
    assert gc.get_freeze_count() == before


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
