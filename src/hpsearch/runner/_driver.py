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

import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ray
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

from hpsearch import lifecycle
from hpsearch.errors import InputError
from hpsearch.lifecycle import FailureStreak, Outcome, RunStop
from hpsearch.prepare import PreparedStudy
from hpsearch.recorder import Recorder
from hpsearch.runner._resources import ResourcePlan, plan_resources
from hpsearch.runner._worker import REPORT_KEY, TrialSetup, run_trial
from hpsearch.spec import StudySpec


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
    """

    numbers: list[int] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    interrupted: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    plan: ResourcePlan | None = None
    stop_reason: str | None = None

    @property
    def states(self) -> dict[int, str]:
        """Final state name of each trial this run started and ended."""
        return {number: outcome.state for number, outcome in self.outcomes.items()}

    @property
    def concurrency(self) -> int:
        """Trials run side by side (the limit this run set)."""
        return self.plan.concurrency if self.plan else 0

    def line(self) -> str:
        """One line on what this run did, for the terminal."""
        counts = lifecycle.tally(self.outcomes.values())
        cut = [outcome.reason for outcome in self.outcomes.values() if outcome.cut]
        text = f"This run: {len(self.numbers)} trial(s) in {self.wall_seconds:.0f} s, " + ", ".join(
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
    once the run is stopping.
    """

    def __init__(
        self,
        recorder: Recorder,
        summary: RunSummary,
        run_stop: RunStop,
        *,
        remaining: int,
        concurrency: int,
    ) -> None:
        super().__init__(metric=None, mode=None)
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
        ticket = self._recorder.ask()
        self._summary.numbers.append(ticket.number)
        return {"number": ticket.number, "seed": ticket.seed, "params": ticket.params}

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


class _Median(_NotedDecisions, _Unpicklable, MedianStoppingRule):
    """Ray's median stopping rule, stopping for good (``hard_stop``), never pausing."""

    def __init__(self, decisions: _DecisionsKept, **kwargs: Any) -> None:
        super().__init__(hard_stop=True, **kwargs)
        self.decisions = decisions


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
    ) -> None:
        self._recorder = recorder
        self._summary = summary
        self._objectives = [o.metric for o in spec.objectives]
        self._shown = [*self._objectives, spec.scheduler.metric]
        self._epochs = spec.budget.epochs
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
            {
                k: v
                for k, v in own.items()
                if not k.startswith("test_") and k not in ("complete", "n_params", "worker_pid")
            }
        )
        self._recorder.record_epoch(number, own)

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
        """FAIL, with the trial's error text."""
        number = int(trial.config["number"])
        outcome = lifecycle.decide(
            self._last.get(number),
            objectives=self._objectives,
            epochs=self._epochs,
            error=_error_text(trial),
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
        """Store, count, and print one trial's outcome."""
        self._recorder.finish(number, outcome, self._history.get(number, []))
        self._summary.outcomes[number] = outcome
        self._run_stop.streak.add(outcome)
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


def _error_text(trial: Trial) -> str:
    """The trial's traceback: Tune writes it locally first and syncs to storage later."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text(encoding="utf-8", errors="replace")
    return str(trial.get_error() or "the trial raised an error (Tune saved no text)")


def _start_ray(address: str | None) -> bool:
    """Start local Ray (or join ``address``); return whether we own the instance.

    Raises:
        InputError: ``--address`` names no reachable Ray cluster.
    """
    if ray.is_initialized():
        return False
    if address is not None:
        _probe(address)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address is None:
            raise
        raise InputError(
            "--address",
            "address",
            f"cannot join a Ray cluster at {address!r}: {exc}",
            "start one (`ray start --head`) or leave --address out to run locally",
        ) from exc
    return True


def _probe(address: str) -> None:
    """Refuse at once an address where nothing listens: ``ray.init`` would wait forever.

    Raises:
        InputError: ``host:port`` (or ``ray://host:port``) refuses or times out a connection.
    """
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # `auto` and other forms: Ray itself answers those quickly
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except OSError as exc:
        raise InputError(
            "--address",
            "address",
            f"nothing answers at {address!r} ({exc})",
            "start the cluster (`ray start --head`) and give its address, e.g. "
            "`--address HEAD_IP:6379` or `--address ray://HEAD_IP:10001`, or leave --address "
            "out to run locally",
        ) from exc


def _alive_nodes() -> list[dict[str, float]]:
    """Each alive node's resources, e.g. ``{"CPU": 16.0, "GPU": 1.0, ...}``."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


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
) -> RunSummary:
    """Run the trials the study's budget still allows, recording each through ``recorder``.

    Args:
        prepared: The checked study, data and objective.
        recorder: The writer of results, already holding the stored study.
        console: Where to print progress.
        address: A Ray cluster to join; None starts a local Ray instance.

    Returns:
        What this run did.
    """
    console = console or Console(stderr=True)
    study = prepared.study
    spec = study.spec
    leftovers = recorder.leftovers()
    remaining = spec.budget.trials - recorder.n_counted()
    if remaining <= 0:
        summary = RunSummary(interrupted=recorder.fail_leftovers())
        console.print(
            f"Study {spec.name!r} already has its {spec.budget.trials} trials; raise "
            "budget.trials (e.g. `--set budget.trials=N`) to run more."
        )
        return summary

    owns_ray = _start_ray(address)
    try:
        plan = plan_resources(study, _alive_nodes(), remaining)
        summary = RunSummary(interrupted=recorder.fail_leftovers(), plan=plan)
        if leftovers:
            console.print(
                f"Ended {len(leftovers)} trial(s) left running by an interrupted run as FAIL "
                "(cut short, not counted)."
            )
        console.print(
            f"[bold]Running[/] {remaining} trial(s) of {spec.name!r}, {plan.concurrency} at a "
            f"time ({plan.cpus:g} CPU{f', {plan.gpus:.4g} GPU' if plan.gpus else ''} each), "
            f"up to {spec.budget.epochs} epochs, storage {spec.storage}"
        )
        setup = TrialSetup(
            objective_file=prepared.objective_ref,
            data=prepared.data,
            epochs=spec.budget.epochs,
            cpus=plan.cpus,
            gpus=plan.gpus,
            deterministic=spec.deterministic,
            input_stats=prepared.input_stats,
        )
        deadline = time.monotonic() + spec.budget.seconds if spec.budget.seconds else None
        run_stop = RunStop(FailureStreak(spec.budget.max_failures_in_a_row), deadline)
        decisions = _DecisionsKept()
        callback = RecorderCallback(recorder, summary, spec, run_stop, decisions, console)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, setup=setup), {"cpu": plan.cpus, "gpu": plan.gpus}
        )
        # Tune's CSV, JSON and TensorBoard files per trial: nothing reads them (storage does).
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        # Tune starts workers for at most this many pending trials; for a custom searcher it
        # assumes 1, which ran every trial in one worker, one after another (measured: 40
        # trials of benchmarks/trial_overhead.py, 2 slots, all in one pid, serially).
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(plan.concurrency)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=RecorderSearcher(
                    recorder,
                    summary,
                    run_stop,
                    remaining=remaining,
                    concurrency=plan.concurrency,
                ),
                scheduler=_make_scheduler(spec, decisions),
                num_samples=-1,  # the searcher says when the budget is spent
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{stamp}",
                storage_path=str((spec.results_dir / "ray").resolve()),
                callbacks=[callback],
                stop=_RunStopper(run_stop, console),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        started = time.monotonic()
        # Tune returns normally after a first Ctrl-C too: trials it left unended without a
        # stop of ours were interrupted.
        reason = lifecycle.RUN_ABORTED
        try:
            with warnings.catch_warnings():
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
    finally:
        if owns_ray:
            ray.shutdown()
    return summary
