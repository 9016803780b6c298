"""How a trial ended and why a run stops: decided once, in plain Python, without Ray.

A trial's ending used to be judged in several places (the Tune callback, the Recorder, the
console line, the failure streak), and they disagreed: the Recorder stored FAIL for a trial whose
objective value was missing while the terminal printed COMPLETE and the streak was reset. Here
the decision is made once, as an :class:`Outcome`, and everything else reads it: the Recorder
stores its state, the driver prints it, the run's counts and the :class:`FailureStreak` take it.

The states mean exactly one thing each:

* ``COMPLETE``: the trial trained its full epoch budget and reported a finite value for every
  objective;
* ``PRUNED``: the scheduler (ASHA) stopped it, and nothing else: searchers learn from pruned
  trials as poor configurations, so a trial cut for any other reason must never be PRUNED;
* ``FAIL``: everything else, with the reason stored. A trial *cut* by the run (time budget,
  Ctrl-C, failure streak, a crashed driver, a killed run) says nothing about its configuration:
  it is FAIL (no searcher learns from FAIL trials) and does not count against ``budget.trials``.

Because this module imports neither Ray nor Optuna, every rule here is tested in milliseconds;
the Ray adapters in :mod:`hpsearch.runner` only feed it events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["COMPLETE", "PRUNED", "FAIL"]

#: The run ended before the trial did; nothing is known about the trial's configuration.
TIME_BUDGET = "time_budget"
INTERRUPTED = "interrupted"
FAILURE_STREAK = "failure_streak"
RUN_ABORTED = "run_aborted"
#: Reasons that cut a trial short from outside: FAIL, not counted against the trial budget.
RUN_STOPS = frozenset({TIME_BUDGET, INTERRUPTED, FAILURE_STREAK, RUN_ABORTED})
#: Ray could not run the trial to its end (a worker it could not start or reuse, or whose
#: process died under it: the OOM killer, a segfault, SIGKILL): nothing is known about the
#: configuration, so it is not counted against the budget, but a run where it keeps happening
#: must stop, so the failure streak counts it.
WORKER_LOST = "worker_lost"
NOT_JUDGED = RUN_STOPS | {WORKER_LOST}

#: The trial's own endings.
COMPLETED = "complete"
SCHEDULER = "scheduler"
ERROR = "error"
NO_VALUE = "no_value"
INCOMPLETE = "incomplete"

_CUT_TEXT = {
    TIME_BUDGET: "the study's time budget (budget.seconds) ran out",
    INTERRUPTED: "the run was interrupted (Ctrl-C, or the run that started it was killed)",
    FAILURE_STREAK: "the run stopped after too many trials failed in a row",
    RUN_ABORTED: "the run ended with an error in the driver",
    WORKER_LOST: "Ray lost its worker, or could not run it on one",
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Outcome:
    """How one trial ended. Made only by :func:`decide`.

    Attributes:
        state: The Optuna state to store.
        reason: Why: ``complete``, ``scheduler``, ``error``, ``no_value``, ``incomplete``, or
            one of :data:`RUN_STOPS`. Stored as the trial's ``stop_reason`` user attribute.
        values: The objectives' values, in the study's order (COMPLETE only).
        epochs: Epochs the trial reported.
        last: The trial's last report (its metrics at ``epochs``).
        error: What went wrong, for FAIL.
    """

    state: State
    reason: str
    values: tuple[float, ...] | None = None
    epochs: int = 0
    last: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def cut(self) -> bool:
        """The run or Ray, not the trial, ended it: the configuration was never judged."""
        return self.reason in NOT_JUDGED

    @property
    def counts_against_budget(self) -> bool:
        """Whether it is one of the study's ``budget.trials``."""
        return not self.cut

    @property
    def is_failure(self) -> bool:
        """A failure the failure streak counts: the objective's, or Ray's to run it at all."""
        return self.state == "FAIL" and self.reason not in RUN_STOPS

    def summary(self) -> str:
        """One line for the terminal: the error's last line, or why the trial was cut."""
        if self.error is None:
            return ""
        lines = self.error.strip().splitlines()
        return lines[-1] if lines else ""


def decide(
    last: Mapping[str, Any] | None,
    *,
    objectives: Sequence[str],
    epochs: int,
    error: str | None = None,
    scheduler_stopped: bool = False,
    run_stop: str | None = None,
    lost: str | None = None,
) -> Outcome:
    """Decide how a trial ended from what it reported and what stopped it.

    Args:
        last: The trial's last report (None if it reported nothing).
        objectives: The study's objective metrics, in order.
        epochs: The trial's full epoch budget.
        error: The error text, when the trial raised.
        scheduler_stopped: The scheduler decided to stop this trial.
        run_stop: The run is ending for this reason (one of :data:`RUN_STOPS`), or None.
        lost: Ray's error, when Ray could not run the trial to its end (the worker could not
            be started or reused, or its process died): the trial is cut as
            :data:`WORKER_LOST`.

    Returns:
        The one outcome every record of the trial follows.
    """
    last = dict(last or {})
    reached = int(last.get("epoch", 0) or 0)
    if lost is not None:
        return _cut(WORKER_LOST, reached, epochs, last, detail=lost)
    if error is not None:
        return Outcome("FAIL", ERROR, epochs=reached, last=last, error=error)
    if last.get("complete"):
        values = [last.get(metric) for metric in objectives]
        missing = [m for m, v in zip(objectives, values, strict=True) if not _finite(v)]
        if missing:
            text = f"the objective reported no finite value for {missing} in its last epoch"
            return Outcome("FAIL", NO_VALUE, epochs=reached, last=last, error=text)
        return Outcome(
            "COMPLETE",
            COMPLETED,
            values=tuple(float(v) for v in values if v is not None),
            epochs=reached,
            last=last,
        )
    if scheduler_stopped:
        return Outcome("PRUNED", SCHEDULER, epochs=reached, last=last)
    if run_stop is not None:
        if run_stop not in RUN_STOPS:
            raise ValueError(f"unknown run stop {run_stop!r}; expected one of {sorted(RUN_STOPS)}")
        return _cut(run_stop, reached, epochs, last)
    text = (
        f"the trial ended after epoch {reached} of {epochs} without completing, and neither the "
        "scheduler nor the run stopped it"
    )
    return Outcome("FAIL", INCOMPLETE, epochs=reached, last=last, error=text)


def _cut(
    reason: str, reached: int, epochs: int, last: dict[str, Any], detail: str | None = None
) -> Outcome:
    text = f"cut after epoch {reached} of {epochs}: {_CUT_TEXT[reason]}"
    if detail:
        text += f" ({detail})"
    return Outcome("FAIL", reason, epochs=reached, last=last, error=text)


def counts_against_budget(state: str, stop_reason: Any) -> bool:
    """Whether a stored trial is one of the study's ``budget.trials``.

    Args:
        state: The stored state's name (``COMPLETE``, ``PRUNED``, ``FAIL``, ...).
        stop_reason: The trial's ``stop_reason`` user attribute (None when absent).
    """
    if state not in ("COMPLETE", "PRUNED", "FAIL"):
        return False
    return not (state == "FAIL" and stop_reason in NOT_JUDGED)


@dataclass
class FailureStreak:
    """Trials that failed one after another: a broken objective should not eat the budget.

    A failure of the objective adds one; a trial that trained (COMPLETE or PRUNED) resets it; a
    trial the run cut says nothing either way.
    """

    limit: int
    count: int = 0

    def add(self, outcome: Outcome) -> None:
        """Take one trial's outcome into account."""
        if outcome.is_failure:
            self.count += 1
        elif not outcome.cut:
            self.count = 0

    @property
    def reached(self) -> bool:
        """Whether the run should stop."""
        return self.count >= self.limit


@dataclass
class RunStop:
    """The one place that says whether, and why, the run as a whole stops.

    The first reason found sticks: trials still running when it is set are cut for that
    reason, never taken for scheduler decisions.

    Args:
        streak: The run's failure streak.
        deadline: ``clock()`` value at which the time budget runs out (None: no budget).
        clock: Monotonic clock (injectable for tests).
    """

    streak: FailureStreak
    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic
    reason: str | None = None

    def check(self) -> str | None:
        """Return the reason to stop, deciding it now if a limit was just reached."""
        if self.reason is None:
            if self.deadline is not None and self.clock() >= self.deadline:
                self.reason = TIME_BUDGET
            elif self.streak.reached:
                self.reason = FAILURE_STREAK
        return self.reason

    def stop(self, reason: str) -> None:
        """Stop for ``reason`` (e.g. :data:`INTERRUPTED`) unless a reason was set already."""
        if reason not in RUN_STOPS:
            raise ValueError(f"unknown run stop {reason!r}; expected one of {sorted(RUN_STOPS)}")
        if self.reason is None:
            self.reason = reason


def tally(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Count outcomes by state, in the order the terminal shows them."""
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    for outcome in outcomes:
        counts[outcome.state] += 1
    return counts
