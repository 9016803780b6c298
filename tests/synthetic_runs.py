"""Helpers for the tests that run studies of the synthetic objective (tests/objectives/).

Those tests write the synthetic space, run `hpsearch run`, read the stored trials back with
plain Optuna, and measure from the clock inside each worker when trials trained together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from hpsearch.results.storage import trial_history

#: The storage the scratch project's studies write to (tests/conftest.py's `synthetic_study`).
STORAGE = "sqlite:///results/test.db"


def stored_trials(storage: str = STORAGE, name: str = "synthetic") -> dict[int, FrozenTrial]:
    """The study's stored trials by number."""
    study = optuna.load_study(study_name=name, storage=storage)
    return {t.number: t for t in study.get_trials()}


def poll_trials(check: Callable[[dict[int, FrozenTrial]], bool], timeout: float) -> bool:
    """Read the stored trials every 0.3 s until ``check`` holds (True) or ``timeout`` passes.

    A driver in another process may not have created the database, its tables or the study
    yet: such reads are skipped.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if not Path(STORAGE.removeprefix("sqlite:///")).exists():
            continue
        try:
            if check(stored_trials()):
                return True
        except Exception:  # the driver has not created the study (or its tables) yet
            continue
    return False


def write_space(**values: object) -> None:
    """The synthetic space: ``x`` searched, ``values`` as constants (no trial fails unless
    ``fail_on`` names one)."""
    lines = ["params:", "  x: {type: float, low: 0.0, high: 1.0}"]
    lines += [f"  {key}: {value}" for key, value in {"fail_on": -1, **values}.items()]
    (Path("search_spaces") / "synthetic.yaml").write_text("\n".join(lines) + "\n")


def training_interval(trial: FrozenTrial) -> tuple[float, float]:
    """When the trial trained, by the clock inside its worker."""
    history = trial_history(trial)
    return history[0]["trained_from"], history[-1]["trained_to"]


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one moment."""
    events = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    peak = running = 0
    for _, step in sorted(events):
        running += step
        peak = max(peak, running)
    return peak


def parallelism(intervals: list[tuple[float, float]]) -> float:
    """Training seconds per second of wall time, from the first start to the last end."""
    span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    return sum(end - start for start, end in intervals) / span
