"""The driver: Ray Tune schedules trials, ASHA stops poor ones, the Recorder writes results.

Who does what:

* :class:`RecorderSearcher` (a Tune ``Searcher``) asks the Recorder for each new trial, only
  when a trial slot is free (the cluster's real slot count, GPUs included), and says when the
  trial budget is spent, so Optuna's sampler sees the stored history, running trials included;
* ASHA watches one metric (``scheduler.metric``) per epoch, as it must: ASHA is single-metric,
  while the search has several objectives. :class:`_DecisionsKept` notes which trials it
  stopped: only those may end PRUNED;
* :class:`RecorderCallback` (a Tune ``Callback``) turns every epoch and every ending into
  :mod:`hpsearch.lifecycle` events; the one :class:`~hpsearch.lifecycle.Outcome` decided per
  trial drives what is stored, what is printed, the counts and the failure streak;
* :class:`_RunStopper` asks :class:`~hpsearch.lifecycle.RunStop` whether the run as a whole
  ends (time budget, failure streak); trials it cuts are FAIL with that reason, not PRUNED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import ray
import yaml
from ray import tune
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper
from rich.console import Console
from rich.live import Live

from hpsearch import lifecycle
from hpsearch.curves import REPLAY_KEYS
from hpsearch.errors import InputError
from hpsearch.lifecycle import FailureStreak, Outcome, RunStop
from hpsearch.prepare import PreparedStudy
from hpsearch.recorder import STALE_AFTER_BEATS, Recorder, TrialTicket
from hpsearch.results.storage import mask_url
from hpsearch.runner import _cluster
from hpsearch.runner._address import check_address
from hpsearch.runner._moasha import Rungs
from hpsearch.runner._optuna_median import N_STARTUP_TRIALS, MedianRule
from hpsearch.runner._progress import Progress
from hpsearch.runner._resources import ResourcePlan, plan_resources
from hpsearch.runner._worker import PLACEMENT_KEYS, REPORT_KEY, TrialSetup, run_trial
from hpsearch.seeding import derive_seed
from hpsearch.spec import DEFAULT_STORAGE, Study, StudySpec


@dataclass
class RunSummary:
    """What one ``hpsearch run`` did.

    Attributes:
        numbers: Trial numbers this run started.
        outcomes: How each of them ended.
        interrupted: Trials of an earlier, killed run ended as cut at start.
        wall_seconds: Wall time of the Tune run.
        plan: Resources per trial and trials side by side.
        stop_reason: Why the run stopped before its trial budget, if it did.
        signal: The signal (SIGINT, SIGTERM) that stopped the run, if one did.
        requeued: Cut trials of earlier runs whose parameters this run queued again.
    """

    numbers: list[int] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    interrupted: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    plan: ResourcePlan | None = None
    stop_reason: str | None = None
    signal: int | None = None
    requeued: list[int] = field(default_factory=list)

    @property
    def states(self) -> dict[int, str]:
        """Final state name of each trial this run started and ended."""
        return {number: outcome.state for number, outcome in self.outcomes.items()}

    @property
    def concurrency(self) -> int:
        """Trials run side by side (the limit this run set)."""
        return self.plan.concurrency if self.plan else 0

    def took(self) -> str:
        """How long the run took, for :meth:`line`."""
        return f"{self.wall_seconds:.0f} s"

    def line(self) -> str:
        """One line on what this run did, for the terminal."""
        counts = lifecycle.tally(self.outcomes.values())
        cut = [outcome.reason for outcome in self.outcomes.values() if outcome.cut]
        text = f"This run: {len(self.numbers)} trial(s) in {self.took()}, " + ", ".join(
            f"{state} {n}" for state, n in counts.items()
        )
        if cut:
            reasons = ", ".join(sorted(set(cut)))
            text += f" ({len(cut)} cut short ({reasons}), not counted)"
        return text


class _Unpicklable:
    """Pickles to nothing: hpsearch resumes from storage, not from Tune's experiment state.

    Tune pickles its searcher and callbacks for experiment restore; ours hold a live database
    connection and a console, which cannot travel.
    """

    def __getstate__(self) -> dict[str, Any]:
        return {}


class RecorderSearcher(_Unpicklable, Searcher):
    """A Tune searcher whose every suggestion is an Optuna ``ask`` through the Recorder.

    It also keeps the run's books, so that they hold whatever Tune does: a trial is asked for
    only while fewer than ``concurrency`` trials (the cluster's real slot count, GPUs included)
    are live, so it can start at once and Optuna's start time is (nearly) its real start; and
    the run is finished when ``remaining`` trials have ended in a way that counts against the
    budget, so a trial cut short (or lost by Ray) leaves its place to another. Nothing is asked
    once the run is stopping. A replay passes ``snap``, which turns each proposal into the
    recorded configuration that answers it (see :meth:`hpsearch.recorder.Recorder.ask`).
    """

    def __init__(
        self,
        recorder: Recorder,
        summary: RunSummary,
        run_stop: RunStop,
        *,
        remaining: int,
        concurrency: int,
        log_dir: Path | None = None,
        budget: int | None = None,
        snap: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(metric=None, mode=None)
        self._log_dir = log_dir
        self._snap = snap
        self._budget = budget
        self._checked = 0.0
        self._shared: tuple[int, int] | None = None
        self._recorder = recorder
        self._summary = summary
        self._run_stop = run_stop
        self._remaining = remaining
        self._concurrency = concurrency

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Accept Tune's (empty) config: the space lives in the Recorder's study."""
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        """Ask Optuna for the next trial's parameters (None: not now; FINISHED: no more).

        Tune's annotation omits the ``Searcher.FINISHED`` string that its SearchGenerator
        checks for, hence the ``type: ignore``.
        """
        outcomes = self._summary.outcomes.values()
        counted = sum(outcome.counts_against_budget for outcome in outcomes)
        live = len(self._summary.numbers) - len(self._summary.outcomes)
        if counted >= self._remaining or (self._run_stop.check() is not None and not live):
            return Searcher.FINISHED
        if self._run_stop.reason is not None or live >= self._concurrency:
            return None
        if counted + live >= self._remaining:
            return None  # the live trials may still complete the budget
        if self._budget is None:
            ticket = self._ask()
        else:
            # A cheap look first (Tune asks on every step of its loop), then, under the lock
            # every driver of the study takes, a fresh look and the ask itself: two drivers
            # must not both take the budget's last place.
            verdict = self._shared_verdict(self._shared_budget())
            if verdict != "ask":
                return verdict
            with self._recorder.budget_lock():
                counted, running = self._shared = self._recorder.budget_use()
                self._checked = time.monotonic()
                verdict = self._shared_verdict(self._shared)
                if verdict != "ask":
                    return verdict
                ticket = self._ask()
            # The reading plus the trial just asked for serves the next cheap look, instead of
            # a second read per ask. The look may then count a trial that has ended since as
            # running, which can only hold an ask back (for at most a second, near the end of
            # the budget), never let one through: the ask itself reads again under the lock.
            self._shared = (counted, running + 1)
        self._summary.numbers.append(ticket.number)
        return {"number": ticket.number, "seed": ticket.seed, "params": ticket.params}

    def _ask(self) -> TrialTicket:
        log_dir = self._log_dir
        return self._recorder.ask(
            None if log_dir is None else lambda number: log_dir / _log_name(number),
            snap=self._snap,
        )

    def _shared_verdict(self, shared: tuple[int, int] | None) -> str | None:
        """``ask``, None (not now) or FINISHED, from the study's stored budget use."""
        if shared is None or self._budget is None:
            return "ask"
        stored_counted, stored_running = shared
        if stored_counted >= self._budget:
            return Searcher.FINISHED  # other drivers on the study spent the budget
        if stored_counted + stored_running >= self._budget:
            return None  # their running trials may still complete it
        return "ask"

    def _shared_budget(self) -> tuple[int, int] | None:
        """The study's counted and RUNNING trials in storage, all drivers together.

        Another driver on the same study spends the same ``budget.trials``; without this,
        two drivers started together would each run the whole budget. Read at most once a
        second (Tune asks for trials on every step of its loop). None: not checked (no
        ``budget`` given).
        """
        if self._budget is None:
            return None
        now = time.monotonic()
        if self._shared is None or now - self._checked > 1.0:
            self._shared = self._recorder.budget_use()
            self._checked = now
        return self._shared

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Nothing to do: the RecorderCallback records outcomes."""


class _DecisionsKept:
    """Remembers which trials the scheduler itself decided to stop: only those are PRUNED."""

    def __init__(self) -> None:
        self.stopped: set[int] = set()

    def note(self, trial: Trial, decision: str) -> str:
        if decision == TrialScheduler.STOP:
            self.stopped.add(int(trial.config["number"]))
        return decision


class _NotedDecisions:
    """Mixin for a Ray scheduler: note every STOP it decides (see :class:`_DecisionsKept`)."""

    decisions: _DecisionsKept

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """The scheduler's decision, noted."""
        decision: str = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        return self.decisions.note(trial, decision)


class _AsyncHyperBand(_NotedDecisions, _Unpicklable, AsyncHyperBandScheduler):
    """Ray's asynchronous HyperBand: ASHA with one bracket, HyperBand with several."""

    def __init__(self, decisions: _DecisionsKept, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decisions = decisions

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """Place the trial in a bracket drawn from its own seed.

        Ray draws the bracket from numpy's global generator, which nothing seeds and anything
        in the process may have drawn from: the same study would stop different trials run
        to run. Here Ray's own draw runs with the global generator seeded, for that one draw,
        from the trial's seed (itself from the master seed), and its state is put back after.
        """
        saved = np.random.get_state()
        np.random.seed(derive_seed(int(trial.config["seed"]), "bracket"))
        try:
            super().on_trial_add(tune_controller, trial)
        finally:
            np.random.set_state(saved)


class _Median(_NotedDecisions, _Unpicklable, MedianStoppingRule):
    """Ray's median stopping rule, stopping for good (``hard_stop``), never pausing."""

    def __init__(self, decisions: _DecisionsKept, **kwargs: Any) -> None:
        super().__init__(hard_stop=True, **kwargs)
        self.decisions = decisions


class StopRule(Protocol):
    """An early-stopping rule of hpsearch's own: whether a trial goes on after an epoch."""

    def goes_on(self, trial: str, epoch: int, result: Mapping[str, Any]) -> bool:
        """Whether ``trial``, reporting ``result`` at ``epoch``, continues."""
        ...


class _RuleScheduler(_Unpicklable, FIFOScheduler):
    """A Tune scheduler around one of hpsearch's own rules (MOASHA, Optuna's median pruner).

    It only feeds the rule Tune's results (each epoch's report carries every objective's value
    so far) and turns its answer into Tune's CONTINUE or STOP, noted so that the trial is
    recorded PRUNED.
    """

    def __init__(self, decisions: _DecisionsKept, rule: StopRule) -> None:
        super().__init__()
        self.decisions = decisions
        self._rule = rule

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """STOP a trial the rule stops."""
        epoch = result.get("epoch")
        if not isinstance(epoch, int) or self._rule.goes_on(str(trial.trial_id), epoch, result):
            return TrialScheduler.CONTINUE
        return self.decisions.note(trial, TrialScheduler.STOP)


#: Report keys that are bookkeeping, not per-epoch metrics: kept out of a trial's history.
_NOT_HISTORY = frozenset({"complete", "n_params", *PLACEMENT_KEYS, *REPLAY_KEYS})


class RecorderCallback(_Unpicklable, Callback):
    """Turns Tune's events into one Outcome per trial, and hands it to every consumer."""

    def __init__(
        self,
        recorder: Recorder,
        summary: RunSummary,
        spec: StudySpec,
        run_stop: RunStop,
        decisions: _DecisionsKept,
        console: Console,
        progress: Progress | None = None,
    ) -> None:
        self._progress = progress
        self._recorder = recorder
        self._summary = summary
        self._objectives = [o.metric for o in spec.objectives]
        self._shown = [*self._objectives, spec.scheduler.metric]
        self._epochs = spec.budget.epochs
        self._worker_retries = spec.resources.worker_retries
        self._run_stop = run_stop
        self._decisions = decisions
        self._console = console
        self._history: dict[int, list[dict[str, Any]]] = {}
        self._last: dict[int, dict[str, Any]] = {}

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        """Store the epoch's progress metric as an Optuna intermediate value."""
        number = int(trial.config["number"])
        own = dict(result.get(REPORT_KEY, {}))
        self._last[number] = own
        self._history.setdefault(number, []).append(
            {k: v for k, v in own.items() if not k.startswith("test_") and k not in _NOT_HISTORY}
        )
        self._recorder.record_epoch(number, own)
        if self._progress is not None:
            value = own.get(self._shown[-1])
            epoch = own.get("epoch")
            self._progress.epoch(
                number,
                epoch if isinstance(epoch, int) else 0,
                float(value) if isinstance(value, int | float) else None,
            )

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """COMPLETE, PRUNED (the scheduler stopped it) or FAIL: see :func:`lifecycle.decide`."""
        number = int(trial.config["number"])
        self.finish(
            number,
            lifecycle.decide(
                self._last.get(number),
                objectives=self._objectives,
                epochs=self._epochs,
                scheduler_stopped=number in self._decisions.stopped,
                run_stop=self._run_stop.reason,
            ),
        )

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """FAIL, with the trial's error text; cut as lost if its worker process died."""
        number = int(trial.config["number"])
        death = _worker_death(trial)
        outcome = lifecycle.decide(
            self._last.get(number),
            objectives=self._objectives,
            epochs=self._epochs,
            error=None if death else _error_text(trial),
            lost=death,
        )
        self.finish(number, outcome)

    def fail(self, number: int, error: str) -> None:
        """FAIL the trial with ``error`` as its text (replayed: its recorded run failed)."""
        outcome = lifecycle.decide(
            self._last.get(number), objectives=self._objectives, epochs=self._epochs, error=error
        )
        self.finish(number, outcome)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Give an outcome to trials Tune ended without telling its callbacks.

        Tune errors a trial whose reused worker could not be reset, and stops trials at the end
        of an experiment, without calling ``on_trial_error``/``on_trial_complete``; left
        unrecorded, such a trial would hold a slot and stay RUNNING in storage.
        """
        for trial in trials:
            if trial.status not in (Trial.ERROR, Trial.TERMINATED):
                continue
            number = int(trial.config["number"])
            if number in self._summary.outcomes or number not in self._summary.numbers:
                continue
            last = self._last.get(number)
            if trial.status == Trial.ERROR:
                text = _error_text(trial).strip().splitlines()
                outcome = lifecycle.decide(
                    last,
                    objectives=self._objectives,
                    epochs=self._epochs,
                    lost=text[-1] if text else "no error text",
                )
            else:
                outcome = lifecycle.decide(
                    last,
                    objectives=self._objectives,
                    epochs=self._epochs,
                    run_stop=self._run_stop.reason,
                )
            self.finish(number, outcome)

    def unended(self) -> list[int]:
        """Trials this run asked for that have no outcome yet."""
        return [n for n in self._summary.numbers if n not in self._summary.outcomes]

    def finish_leftovers(self, reason: str) -> None:
        """End the trials Tune left unended (the run stopped under them) as cut for ``reason``."""
        for number in self.unended():
            outcome = lifecycle.decide(
                self._last.get(number),
                objectives=self._objectives,
                epochs=self._epochs,
                run_stop=reason,
            )
            self.finish(number, outcome)

    def finish(self, number: int, outcome: Outcome) -> None:
        """Store, count, and print one trial's outcome; queue a lost trial again at once.

        A trial Ray lost (its worker died, or could not run it) is retried with the same
        parameters and seed up to ``resources.worker_retries`` times (see :func:`_retried`),
        unless the run is stopping, this loss included (the failure streak counts it).
        """
        self._run_stop.streak.add(outcome)
        if outcome.reason == lifecycle.WORKER_LOST:
            stopping = self._run_stop.reason is not None or self._run_stop.streak.reached
            outcome = _retried(
                outcome, self._recorder, number, self._worker_retries, stopping=stopping
            )
        self._recorder.finish(number, outcome, self._history.get(number, []))
        self._summary.outcomes[number] = outcome
        if self._progress is not None:
            self._progress.ended(number, outcome)
        style = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}[outcome.state]
        if outcome.state == "FAIL":
            detail = outcome.summary()[:160]
        else:
            detail = ", ".join(
                f"{k} {v:.4g}"
                for k, v in outcome.last.items()
                if k in self._shown and isinstance(v, int | float)
            )
        self._console.print(
            f"  trial {number:>3} [{style}]{outcome.state:<8}[/] epoch {outcome.epochs:>3}  "
            f"{detail}",
            highlight=False,
        )


class _RunStopper(_Unpicklable, Stopper):
    """Tune's view of :class:`RunStop`: ends the run on the time budget or a failure streak."""

    def __init__(self, run_stop: RunStop, console: Console) -> None:
        self._run_stop = run_stop
        self._console = console
        self._said = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """No single trial is stopped here."""
        return False

    def stop_all(self) -> bool:
        """Stop everything once the run has a reason to stop."""
        reason = self._run_stop.check()
        if reason is None:
            return False
        if not self._said:
            self._said = True
            if reason == lifecycle.FAILURE_STREAK:
                self._console.print(
                    f"[red]Stopping: {self._run_stop.streak.limit} trials failed in a row.[/] "
                    "Their errors are stored on the trials (user attribute `error`); fix the "
                    "objective and rerun to continue the study."
                )
            elif reason == lifecycle.TIME_BUDGET:
                self._console.print(
                    "[yellow]Stopping: the time budget (budget.seconds) ran out.[/] Trials cut "
                    "short are stored FAIL and do not count against budget.trials."
                )
        return True


def _dashboard_command(study: Study) -> str:
    """``hpsearch dashboard`` for this run, ``--storage`` included when it is needed.

    The dashboard reads the storage the study file names; a run given another one
    (``--storage``, ``--set storage=...``) says it, its password masked.
    """
    command = f"hpsearch dashboard {study.source}"
    raw = yaml.safe_load(study.source.read_text())
    named = raw.get("storage", DEFAULT_STORAGE) if isinstance(raw, dict) else None
    if study.spec.storage != named:
        command += f" --storage {mask_url(study.spec.storage)}"
    return command


def _log_name(number: int) -> str:
    """The file a trial's own output (prints, warnings, TensorFlow's log) goes to."""
    return f"trial_{number:05d}.log"


class _Heartbeat:
    """Marks this driver's running trials alive in storage from a thread of its own.

    A thread, not Tune's event loop: a slow step of the loop (a trial starting, a long
    callback) must not make another driver take these trials for a dead run's.
    """

    def __init__(self, recorder: Recorder, summary: RunSummary, seconds: float) -> None:
        self._recorder = recorder
        self._summary = summary
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpsearch-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        beats = 0
        while not self._stop.wait(self._seconds):
            live = [n for n in list(self._summary.numbers) if n not in self._summary.outcomes]
            beats += 1
            try:
                self._recorder.beat(live)
                if beats % STALE_AFTER_BEATS == 0:
                    # A driver that died (before or during this run: a run started right
                    # after a kill -9 finds its trials not yet stale) holds budget with its
                    # RUNNING trials; end them as cut, and queue their parameters so that
                    # this run's next asks train them again.
                    ended = self._recorder.fail_leftovers()
                    if ended:
                        self._summary.requeued += self._recorder.rerun_cut(len(ended))
            except Exception:  # a storage hiccup: the next beat tries again
                logging.getLogger(__name__).debug("heartbeat failed", exc_info=True)


class _Signals:
    """SIGINT and SIGTERM during the Tune run: the first cuts the trials, a second stops hard.

    Tune's own SIGINT handler says nothing until its loop gets round to the stop, and a
    second Ctrl-C then kills the process with nothing recorded. Here the first signal is
    acknowledged at once (written straight to stderr, not through the console, whose lock
    the interrupted main thread may hold), and the run stops as for any other reason: the
    running trials are cut as ``interrupted`` and recorded, and the run exits 130 (SIGINT)
    or 143 (SIGTERM). A second signal records what it can within a few seconds, shuts Ray
    down, and exits at once.

    Args:
        run_stop: The run's stop, told :data:`~hpsearch.lifecycle.INTERRUPTED`.
        summary: The run's books (trials running, the signal that stopped the run).
        hard_stop: Called on the second signal (records the cut trials; Ray shut down).
    """

    def __init__(
        self,
        run_stop: RunStop,
        summary: RunSummary,
        hard_stop: Callable[[], None],
        progress: Progress | None = None,
    ) -> None:
        self._progress = progress
        self._run_stop = run_stop
        self._summary = summary
        self._hard_stop = hard_stop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        code = 128 + signum
        if self._summary.signal is None:
            self._summary.signal = signum
            self._run_stop.stop(lifecycle.INTERRUPTED)
            live = len(self._summary.numbers) - len(self._summary.outcomes)
            again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
            text = f"stopping: cutting {live} running trial(s)... ({again} again to stop at once)"
            _say("\n" + text)
            if self._progress is not None:
                self._progress.note = text
            return
        _say("stopping now: recording what can be recorded, shutting Ray down")
        _within(self._hard_stop, seconds=8)
        _say(f"stopped; `hpsearch run` of the same study continues it (exit {code})")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _say(text: str) -> None:
    """Write a line to stderr at once, safe inside a signal handler."""
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode())


def _within(work: Callable[[], None], *, seconds: float) -> None:
    """Run ``work`` in a thread and wait for it at most ``seconds``: a hard stop must not hang."""

    def guarded() -> None:
        try:
            work()
        except Exception:  # stopping hard: whatever fails here, the next run cleans up
            logging.getLogger(__name__).debug("hard stop", exc_info=True)

    thread = threading.Thread(target=guarded, name="hpsearch-hard-stop", daemon=True)
    thread.start()
    thread.join(timeout=seconds)


def _error_text(trial: Trial) -> str:
    """The trial's traceback: Tune writes it locally first and syncs to storage later."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text(encoding="utf-8", errors="replace")
    return str(trial.get_error() or "the trial raised an error (Tune saved no text)")


#: Ray's errors for a trial whose worker process died under it, or whose node did: nothing
#: the trial's own code raised (that arrives as a ``RayTaskError``).
_WORKER_DEATHS: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError,  # ActorDiedError: the trial's actor process died
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.OutOfMemoryError,  # Ray's memory monitor killed it
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
)
#: How those errors' texts begin, for when the pickled error cannot be read.
_DEATH_TEXTS = (
    ray.exceptions.ActorDiedError.BASE_ERROR_MSG,
    "The worker died unexpectedly",
    "Task was killed due to the node running low on memory",
    "The task's local raylet died",
)
#: Starts the ``lost`` text of a trial whose worker died (see :func:`_retried`).
_DIED = "the worker process died"


def _worker_death(trial: Trial) -> str | None:
    """One line on how the trial's worker process died, or None: the trial's code failed.

    A worker killed under its trial (the OOM killer, a segfault in TensorFlow, SIGKILL) says
    nothing about the configuration. Ray 2.60 then errors the trial with an
    ``ActorDiedError`` ("The actor died unexpectedly before finishing this task." plus the
    pid and "Worker exit type: SYSTEM_ERROR ... connection error code 2. End of file."), which
    Tune pickles next to its ``error.txt`` before calling the callbacks; its copy in the
    experiment's storage (``trial.get_error()``) is not synced yet at that moment. The type is
    checked first; the text's first line only when the pickle cannot be read.
    """
    error: BaseException | None = None
    pickled = trial.pickled_error_file
    if pickled and Path(pickled).is_file():
        from ray import cloudpickle

        try:
            with open(pickled, "rb") as file:
                error = cloudpickle.load(file)
        except Exception:  # e.g. the objective's own exception class, not importable here
            error = None
    text = str(error) if error is not None else _error_text(trial)
    if error is not None:
        died = (
            isinstance(error, _WORKER_DEATHS)
            and not isinstance(error, ray.exceptions.RayTaskError)
            and not getattr(error, "actor_init_failed", False)
        )
        kind = type(error).__name__
    else:
        # Tune's error.txt: "Failure # 1 (occurred at ...)", then the error's own text.
        lines = [line for line in text.strip().splitlines() if not line.startswith("Failure #")]
        died = bool(lines) and lines[0].startswith(_DEATH_TEXTS)
        kind = "Ray"
    if not died:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Failure #")]
    details = []
    for label, key in (("pid", "pid: "), ("exit type", "Worker exit type: ")):
        for line in lines:
            if key in line:
                details.append(f"{label} {line.split(key, 1)[1].split()[0]}")
                break
    first = lines[0] if lines else "no error text"
    return f"{_DIED}: {kind}: {first}" + (f" ({', '.join(details)})" if details else "")


def _retried(
    outcome: Outcome, recorder: Recorder, number: int, limit: int, *, stopping: bool
) -> Outcome:
    """A lost trial's outcome, once it is queued again (``resources.worker_retries``) or not.

    Its error gains a last line, the one the terminal shows: ``worker died; retrying (1 of
    2)``, or why it is not retried. A run that is stopping queues nothing: the next run
    reruns the trial (``resume.cut_trials``), its retries counted on (see
    :meth:`Recorder.worker_retries_done`).
    """
    what = "worker died" if _DIED in (outcome.error or "") else "worker lost"
    if stopping:
        note = f"{what}; not retried: the run is stopping"
    elif (retry := recorder.retry_lost(number, limit)) is not None:
        note = f"{what}; retrying ({retry} of {limit})"
    elif limit == 0:
        note = f"{what}; not retried (resources.worker_retries: 0)"
    else:
        done = recorder.worker_retries_done(number)
        note = (
            f"{what}; retried {done} time{'s' if done != 1 else ''} already, not again "
            f"(resources.worker_retries: {limit})"
        )
    return dataclasses.replace(outcome, error=f"{outcome.error}\n{note}")


def _start_ray(address: str | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Start local Ray (or join ``address``); return whether we own the instance.

    Args:
        address: A Ray cluster to join; None starts a local instance.
        runtime_env: The job's runtime environment (the code a cluster's nodes import, see
            :mod:`hpsearch.runner._cluster`); Ray uploads its folders here, in ``ray.init``.

    Raises:
        InputError: ``--address`` names no reachable Ray cluster, or one that refuses us.
    """
    if ray.is_initialized():
        return False
    if address is not None:
        check_address(address)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # hpsearch handles SIGINT itself (see _Signals).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # A failed trial is one line of ours; Tune would log its whole traceback too.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    try:
        ray.init(
            address=address,
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
        )
        if address is None:
            from hpsearch.runner import _reaper

            _reaper.start()
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        if address is None:
            raise
        if _refused_for_auth(exc):
            fix = (
                "the cluster uses token authentication (Ray does when its head found a token "
                "in ~/.ray/auth_token): run with RAY_AUTH_MODE=token and the cluster's token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN, as on every node"
            )
        else:
            fix = "start one (`ray start --head`) or leave --address out to run locally"
        first = str(exc).strip().splitlines()
        raise InputError(
            "--address",
            "address",
            f"cannot join a Ray cluster at {address!r}: {first[0] if first else exc}",
            fix,
        ) from exc
    return True


def _refused_for_auth(exc: BaseException) -> bool:
    """Whether joining a cluster failed on Ray's token authentication.

    Ray retries the connection and then raises a plain ``ConnectionError``; the refusal
    itself is an ``AuthenticationError`` (or its text) further down the exception's chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ray.exceptions.AuthenticationError) or (
            "InvalidAuthToken" in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _alive_nodes() -> list[dict[str, float]]:
    """Each alive node's resources, e.g. ``{"CPU": 16.0, "GPU": 1.0, ...}``."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def _trial_nodes(plan: ResourcePlan) -> list[dict[str, Any]]:
    """The alive nodes (as ``ray.nodes()`` gives them) that can hold one trial of ``plan``.

    Only those must have the data: a head started with ``--num-cpus 0`` runs no trial.
    """
    eps = 1e-9
    return [
        node
        for node in ray.nodes()
        if node.get("Alive")
        and node["Resources"].get("CPU", 0.0) + eps >= plan.cpus
        and node["Resources"].get("GPU", 0.0) + eps >= plan.gpus
    ]


def _make_scheduler(spec: StudySpec, decisions: _DecisionsKept) -> TrialScheduler:
    """The study's early-stopping rule on one metric, in epochs, up to the full budget.

    Ray's synchronous HyperBand pauses trials and resumes them later, which a trial without
    checkpoints cannot do; ``hyperband`` is therefore Ray's asynchronous HyperBand (ASHA
    over several brackets), which only ever stops.
    """
    scheduler = spec.scheduler
    grace = min(scheduler.grace_period, spec.budget.epochs)
    if scheduler.type == "fifo":
        return FIFOScheduler()
    if scheduler.type == "moasha":
        objectives = [
            (o.metric, "max" if o.direction == "maximize" else "min") for o in spec.objectives
        ]
        return _RuleScheduler(
            decisions,
            Rungs(objectives, grace, scheduler.reduction_factor, spec.budget.epochs),
        )
    if scheduler.type == "optuna-median":
        startup = scheduler.min_samples if "min_samples" in scheduler.model_fields_set else None
        rule = MedianRule(
            scheduler.metric,
            scheduler.mode,
            n_startup_trials=startup or N_STARTUP_TRIALS,
            n_warmup_steps=grace,
            max_t=spec.budget.epochs,
        )
        return _RuleScheduler(decisions, rule)
    if scheduler.type == "median":
        return _Median(
            decisions,
            time_attr="epoch",
            metric=scheduler.metric,
            mode=scheduler.mode,
            grace_period=grace,
            min_samples_required=scheduler.min_samples,
        )
    return _AsyncHyperBand(
        decisions,
        time_attr="epoch",
        metric=scheduler.metric,
        mode=scheduler.mode,
        max_t=spec.budget.epochs,
        grace_period=grace,
        reduction_factor=scheduler.reduction_factor,
        brackets=scheduler.brackets if scheduler.type == "hyperband" else 1,
    )


def run_study(
    prepared: PreparedStudy,
    recorder: Recorder,
    *,
    console: Console | None = None,
    address: str | None = None,
    closing: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run the trials the study's budget still allows, recording each through ``recorder``.

    Args:
        prepared: The checked study, data and objective.
        recorder: The writer of results, already holding the stored study.
        console: Where to print progress.
        address: A Ray cluster to join; None starts a local Ray instance.
        closing: What the caller does once the trials have ended (the closing report), run
            while Ray shuts down: stopping Ray's processes takes over a second of waiting,
            which the report's reads and printing can fill. Not run when the run raised.

    Returns:
        What this run did.
    """
    console = console or Console(stderr=True)
    study = prepared.study
    spec = study.spec
    leftovers = recorder.fail_leftovers()
    remaining = spec.budget.trials - recorder.n_counted()
    if leftovers:
        console.print(
            f"Ended {len(leftovers)} trial(s) left running by a run that died as FAIL "
            "(cut short, not counted)."
        )
    if remaining <= 0:
        summary = RunSummary(interrupted=leftovers)
        console.print(
            f"Study {spec.name!r} already has its {spec.budget.trials} trials; raise "
            "budget.trials (e.g. `--set budget.trials=N`) to run more."
        )
        if closing is not None:
            closing(summary)
        return summary

    on_cluster = address not in (None, "local")
    shipped: str | None = None
    if on_cluster and not ray.is_initialized():
        # A cluster's nodes need not share the driver's disk: the code goes with the job.
        with _cluster.shipment(prepared.objective_ref, source=study.source) as shipment:
            owns_ray = _start_ray(address, runtime_env=shipment.runtime_env)
        shipped = shipment.objective
    else:
        owns_ray = _start_ray(address)
    # The signal handlers stay until Ray is shut down: a second Ctrl-C while a lingering
    # trial holds up the shutdown must still stop at once.
    held = contextlib.ExitStack()
    closing_work: Callable[[], None] | None = None
    try:
        plan = plan_resources(study, _alive_nodes(), remaining)
        recorder.note_run(
            [n for n in ray.nodes() if n.get("Alive")],
            address=address,
            concurrency=plan.concurrency,
        )
        if on_cluster:
            # Local Ray shares the driver's disk, where prepare() already read the data.
            _cluster.check_data_on_nodes(
                [shard.path for shard in prepared.data.dataset.files],
                _trial_nodes(plan),
                source=study.source,
            )
        summary = RunSummary(interrupted=leftovers, plan=plan)
        summary.requeued = recorder.rerun_cut(remaining)
        if summary.requeued:
            console.print(
                f"Running again with the same parameters {len(summary.requeued)} trial(s) an "
                f"earlier run cut short: {', '.join(map(str, summary.requeued))} "
                "(resume.cut_trials: rerun)."
            )
        console.print(
            f"[bold]Running[/] {remaining} trial(s) of {spec.name!r}, {plan.concurrency} at a "
            f"time ({plan.cpus:g} CPU{f', {plan.gpus:.4g} GPU' if plan.gpus else ''} each), "
            f"up to {spec.budget.epochs} epochs, storage {mask_url(spec.storage)}"
        )
        dashboard = _dashboard_command(study)
        console.print(f"Watch it live: {dashboard}", highlight=False, soft_wrap=True)
        setup = TrialSetup(
            objective_file=prepared.objective_ref,
            data=prepared.data,
            epochs=spec.budget.epochs,
            cpus=plan.cpus,
            gpus=plan.gpus,
            deterministic=spec.deterministic,
            input_stats=prepared.input_stats,
            shipped_objective=shipped,
        )
        deadline = time.monotonic() + spec.budget.seconds if spec.budget.seconds else None
        run_stop = RunStop(FailureStreak(spec.budget.max_failures_in_a_row), deadline)
        decisions = _DecisionsKept()
        progress = Progress(
            total=remaining,
            objective=spec.objectives[0].metric,
            maximize=spec.objectives[0].direction == "maximize",
            metric=spec.scheduler.metric,
            deadline=deadline,
            dashboard=dashboard,
        )
        callback = RecorderCallback(recorder, summary, spec, run_stop, decisions, console, progress)
        # Tune's CSV, JSON and TensorBoard files per trial: nothing reads them (storage does).
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        # Tune starts workers for at most this many pending trials; for a custom searcher it
        # assumes 1, which ran every trial in one worker, one after another (measured: 40
        # trials of benchmarks/trial_overhead.py, 2 slots, all in one pid, serially).
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(plan.concurrency)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        # The pid: two drivers of one study started in the same second get folders of their own.
        run_dir = (spec.results_dir / "ray").resolve() / f"{spec.name}-{stamp}-{os.getpid()}"
        log_dir = run_dir / "trial_logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        models = None if recorder.models_dir is None else str(recorder.models_dir)
        setup = dataclasses.replace(setup, log_dir=str(log_dir), model_dir=models)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, setup=setup), {"cpu": plan.cpus, "gpu": plan.gpus}
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=RecorderSearcher(
                    recorder,
                    summary,
                    run_stop,
                    remaining=remaining,
                    concurrency=plan.concurrency,
                    log_dir=log_dir,
                    budget=spec.budget.trials,
                ),
                scheduler=_make_scheduler(spec, decisions),
                num_samples=-1,  # the searcher says when the budget is spent
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=run_dir.name,
                storage_path=str(run_dir.parent),
                callbacks=[callback],
                stop=_RunStopper(run_stop, console),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        started = time.monotonic()
        # Tune returns normally after a stop of ours (Ctrl-C and SIGTERM included, see
        # _Signals): trials it left unended were cut for the run's reason.
        reason = lifecycle.RUN_ABORTED

        def hard_stop() -> None:
            callback.finish_leftovers(lifecycle.INTERRUPTED)
            if owns_ray:
                _shut_down(ray.shutdown)

        try:
            held.enter_context(_Signals(run_stop, summary, hard_stop, progress))
            # The live view ends with the trials: the closing report prints below it.
            live = (
                Live(progress, console=console, refresh_per_second=2, transient=True)
                if console.is_terminal
                else contextlib.nullcontext()
            )
            with (
                live,
                warnings.catch_warnings(),
                _Heartbeat(recorder, summary, spec.resume.heartbeat_seconds),
            ):
                warnings.simplefilter("ignore")
                tuner.fit()
            reason = run_stop.reason or lifecycle.INTERRUPTED
        except KeyboardInterrupt:
            reason = lifecycle.INTERRUPTED
            raise
        finally:
            summary.wall_seconds = time.monotonic() - started
            if callback.unended():
                run_stop.stop(reason)
                callback.finish_leftovers(run_stop.reason or reason)
            summary.stop_reason = run_stop.reason
        if closing is not None:  # not reached when the run raised: nothing to report then
            closing_work = functools.partial(closing, summary)
    finally:
        try:
            _shut_down_alongside(ray.shutdown if owns_ray else None, closing_work)
        finally:
            held.close()
    return summary


def _shut_down_alongside(
    shutdown: Callable[[], None] | None, closing: Callable[[], None] | None
) -> None:
    """Run ``closing`` in a thread while ``shutdown`` stops Ray in this one.

    Ray's shutdown is mostly waiting for its processes to exit (1.4 s of a no-op run on a
    2-core machine, ``benchmarks/trial_overhead.py``), so the closing report costs next to no
    wall time beside it. Shutdown stays on the main thread, where Ray expects it; an error of
    ``closing`` is raised here once Ray is down.
    """
    if closing is None:
        if shutdown is not None:
            _shut_down(shutdown)
        return
    if shutdown is None:
        closing()
        return
    with ThreadPoolExecutor(1, thread_name_prefix="hpsearch-closing") as pool:
        closed = pool.submit(closing)
        try:
            _shut_down(shutdown)
        finally:
            closed.result()


def _shut_down(shutdown: Callable[[], None]) -> None:
    """Stop Ray with Python's garbage collections paused until it is down.

    A collection that runs meanwhile, set off by any thread's allocations (the closing
    report's, the live view's), may free a reference cycle holding ObjectRefs (a caught trial
    error's traceback holds them). Freeing one calls into the core worker, and mid-shutdown
    that ends the process at once with exit code 1 and no traceback (Ray's ``QuickExit``).
    Once Ray is down, the same ObjectRefs are freed without calling it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        shutdown()
    finally:
        if was_enabled:
            gc.enable()
