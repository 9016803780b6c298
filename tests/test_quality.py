"""The code stays ruff- and mypy-clean, and importing hpsearch stays cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    paths = ["src", "objectives", "tests", "benchmarks"]
    check = _run(str(BIN / "ruff"), "check", *paths)
    assert check.returncode == 0, check.stdout
    fmt = _run(str(BIN / "ruff"), "format", "--check", *paths)
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_clean() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout


def test_import_hpsearch_loads_neither_tensorflow_nor_ray() -> None:
    code = (
        "import sys, hpsearch, hpsearch.cli, hpsearch.spec, hpsearch.data, hpsearch.report, "
        "hpsearch.recorder, hpsearch.runner, hpsearch.simulate;"
        "heavy = [m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
