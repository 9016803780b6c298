"""Shared fixtures: a small simulated data file, a scratch project, seeded everything."""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from postgres import Server, running_server

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Every test starts from the same random state, whatever ran before it.
TEST_SEED = 1234


@pytest.fixture(autouse=True)
def seeded() -> int:
    """Seed Python's and numpy's global generators (and Keras's, once a test imported it)."""
    import numpy as np

    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(TEST_SEED)
    return TEST_SEED


@pytest.fixture(scope="session")
def xgamma_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 simulated xgamma events, made once per test session."""
    from hpsearch.simulate.xgamma import simulate_to_file

    path = tmp_path_factory.mktemp("data") / "xgamma.h5"
    simulate_to_file(path, 600, seed=11, progress=False)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    """A real PostgreSQL server on loopback for this test session (see tests/postgres.py)."""
    root = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
    try:
        with running_server(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: Server) -> str:
    """An empty database of the session's PostgreSQL server, as an SQLAlchemy URL."""
    return postgres.new_database()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch project directory holding copies of the shipped files, as the cwd."""
    for folder in ("studies", "search_spaces", "objectives"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(TESTS / "objectives" / "synthetic.py", tmp_path / "objectives" / "synthetic.py")
    shutil.copy(TESTS / "spaces" / "synthetic.yaml", tmp_path / "search_spaces" / "synthetic.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_study(project: Path) -> Callable[..., Path]:
    """Write a study file into the scratch project from the shipped one plus changes."""

    def write(filename: str = "study.yaml", base: str = "xgamma_resnet", **changes: Any) -> Path:
        raw = yaml.safe_load((project / "studies" / f"{base}.yaml").read_text())
        for key, value in changes.items():
            target = raw
            *parents, last = key.split("__")
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = value
        path = project / "studies" / filename
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


@pytest.fixture
def synthetic_study(write_study: Callable[..., Path], xgamma_file: Path) -> Callable[..., Path]:
    """A study of the synthetic objective: the runner's machinery, no training."""

    def write(**changes: Any) -> Path:
        defaults: dict[str, Any] = {
            "name": "synthetic",
            "task": "synthetic",
            "space": "search_spaces/synthetic.yaml",
            "data__path": str(xgamma_file),
            "budget": {"trials": 4, "epochs": 4},
            "scheduler": {
                "type": "asha",
                "metric": "val_accuracy",
                "mode": "max",
                "grace_period": 1,
                "reduction_factor": 2,
            },
            "searcher": {"type": "random"},
            "storage": "sqlite:///results/test.db",
        }
        defaults.update(changes)
        return write_study("synthetic.yaml", **defaults)

    return write
