"""``hpsearch dashboard`` in a real browser: optuna-dashboard shows hpsearch's note and figure.

The dashboard is a single-page app: its HTML is an empty shell until JavaScript fetched the
study and drew it, so only a browser can tell whether the note and the figure render. Headless
Chromium loads the study page, lets the app run (``--virtual-time-budget``) and dumps the
rendered DOM, and a screenshot is kept for a human to look at.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.cli import main
from hpsearch.results.storage import HISTORY_KEY

CHROMIUM = Path("/usr/bin/chromium")
STUDY = "dash_demo_study"
_DIST = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stored_study(path: Path) -> str:
    """A small two-objective study in a SQLite file, as the Recorder would leave it."""
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name=STUDY, storage=url, directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["val_accuracy", "train_seconds"])
    study.set_user_attr(
        "data", {"files": ["data/x.h5"], "split_sizes": {"train": 700, "val": 150, "test": 150}}
    )
    for i, (acc, secs) in enumerate([(0.81, 12.0), (0.86, 30.0), (0.78, 25.0)]):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[acc, secs],
                params={"lr": 10.0 ** -(i + 2)},
                distributions=_DIST,
                user_attrs={"epochs_reached": 4, "train_seconds": secs, "stop_reason": "complete"},
                system_attrs={
                    HISTORY_KEY: [{"epoch": e, "val_accuracy": acc * e / 4} for e in range(1, 5)]
                },
            )
        )
    return url


def _wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dashboard exited {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("dashboard did not answer within 30 s")


def _chromium(
    *args: str, profile: Path, window: str = "1400,1000"
) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90, check=False
    )


def test_dashboard_renders_hpsearchs_note_and_figure(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: no browser to render the dashboard in")
    url = _stored_study(tmp_path / "dash.db")
    port = _free_port()
    cli = Path(sys.executable).with_name("hpsearch")
    server = subprocess.Popen(
        [str(cli), "dashboard", "--storage", url, "--port", str(port), "--poll", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, server)
        page = f"http://127.0.0.1:{port}/dashboard/studies/1"
        dom = _chromium("--dump-dom", page, profile=tmp_path / "profile-dom").stdout
        note = _chromium("--dump-dom", page + "/note", profile=tmp_path / "profile-note").stdout
        shot = tmp_path / "dashboard.png"
        # tall enough to show optuna-dashboard's own plots and, below them, hpsearch's figure
        _chromium(
            f"--screenshot={shot}", page, profile=tmp_path / "profile-shot", window="1400,3400"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert STUDY in dom and STUDY in note
    # hpsearch's note, on the study's note page: its counts and the Pareto set's rows.
    assert "hpsearch summary" in note
    assert "3 trials: COMPLETE 3, PRUNED 0, FAIL 0, RUNNING 0." in note
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", note)
    assert cells[:5] == ["1", "0.8600", "30.0", "-", "4"]  # best accuracy first
    assert cells[6:11] == ["0", "0.8100", "12.0", "-", "4"]
    # The figure drew on the study page: plotly's SVG, hpsearch's title and readable axes.
    assert "main-svg" in dom
    assert "validation accuracy (max), training time (s) (min)" in dom
    assert "Pareto front [2]" in dom and "complete (dominated) [1]" in dom
    assert "training time (s)" in dom
    # The per-epoch histories, drawn as learning curves (optuna-dashboard shows no system
    # attribute): the second figure of hpsearch's.
    assert "learning curves (validation accuracy per epoch)" in dom
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, "/tmp/dashboard_screenshot.png")


def test_dashboard_refreshes_the_note_when_a_trial_lands(tmp_path: Path) -> None:
    from rich.console import Console

    from hpsearch.cli.dashboard import Annotator
    from hpsearch.results.storage import open_existing_storage

    url = _stored_study(tmp_path / "dash.db")
    storage = open_existing_storage(url)
    annotator = Annotator(storage, Console(stderr=True))
    assert annotator.refresh() == [STUDY]
    assert annotator.refresh() == []  # nothing new: nothing rewritten
    study = optuna.load_study(study_name=STUDY, storage=storage)
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE, values=[0.9, 5.0], params={"lr": 0.01}, distributions=_DIST
        )
    )
    assert annotator.refresh() == [STUDY]
    from optuna_dashboard import get_note

    assert "4 trials: COMPLETE 4" in str(get_note(optuna.load_study(study_name=STUDY, storage=url)))


def test_a_port_in_use_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _stored_study(tmp_path / "dash.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: port {port} on 127.0.0.1 is in use; pick another with --port"


def test_a_missing_storage_is_refused_without_creating_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    assert main(["dashboard", "--storage", f"sqlite:///{missing}", "--port", "1"]) == 2
    assert not missing.exists()
    assert "typo.db" in capsys.readouterr().err


def test_help_has_defaults_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("dashboard", "report"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and "default" in text
    # the dashboard's bind address and port defaults are stated
    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    text = capsys.readouterr().out
    assert "127.0.0.1" in text and "8080" in text
