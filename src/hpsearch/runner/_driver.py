"""The driver: Ray Tune schedules trials, ASHA stops poor ones, the Recorder writes results.

Who does what:

* :class:`RecorderSearcher` (a Tune ``Searcher``) asks the Recorder for each new trial, so
  Optuna's sampler sees the stored history, running trials included;
* ASHA watches one metric (``scheduler.metric``) per epoch, as it must: ASHA is single-metric,
  while the search has several objectives;
* :class:`RecorderCallback` (a Tune ``Callback``) hands every epoch and every ending to the
  Recorder, which decides COMPLETE / PRUNED / FAIL from what the trial actually did.
"""

from __future__ import annotations

import logging
import math
import os
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
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper
from rich.console import Console

from hpsearch.errors import InputError
from hpsearch.prepare import PreparedStudy
from hpsearch.recorder import Recorder
from hpsearch.runner._worker import TrialSetup, run_trial
from hpsearch.spec import Study, StudySpec


@dataclass
class RunSummary:
    """What one ``hpsearch run`` did.

    Attributes:
        numbers: Trial numbers this run started.
        states: Final state name of each of them.
        interrupted: Trials of an earlier, killed run marked FAIL at start.
        wall_seconds: Wall time of the Tune run.
        concurrency: Trials run side by side (the limit this run set).
    """

    numbers: list[int] = field(default_factory=list)
    states: dict[int, str] = field(default_factory=dict)
    interrupted: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    concurrency: int = 0


class _Unpicklable:
    """Pickles to nothing: hpsearch resumes from storage, not from Tune's experiment state.

    Tune pickles its searcher and callbacks for experiment restore; ours hold a live database
    connection and a console, which cannot travel.
    """

    def __getstate__(self) -> dict[str, Any]:
        return {}


class RecorderSearcher(_Unpicklable, Searcher):
    """A Tune searcher whose every suggestion is an Optuna ``ask`` through the Recorder."""

    def __init__(self, recorder: Recorder, summary: RunSummary) -> None:
        super().__init__(metric=None, mode=None)
        self._recorder = recorder
        self._summary = summary

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Accept Tune's (empty) config: the space lives in the Recorder's study."""
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask Optuna for the next trial's parameters."""
        ticket = self._recorder.ask()
        self._summary.numbers.append(ticket.number)
        return {"number": ticket.number, "seed": ticket.seed, "params": ticket.params}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Nothing to do: the RecorderCallback records outcomes."""


class RecorderCallback(_Unpicklable, Callback):
    """Passes each epoch and each ending of a trial to the Recorder, and tells the user."""

    def __init__(
        self,
        recorder: Recorder,
        summary: RunSummary,
        metrics: set[str],
        console: Console,
        deadline: float | None,
    ) -> None:
        self._recorder = recorder
        self._summary = summary
        self._metrics = metrics | {"epoch", "complete"}
        self._console = console
        self._deadline = deadline
        self._history: dict[int, list[dict[str, Any]]] = {}
        self._last: dict[int, dict[str, Any]] = {}
        self.failures_in_a_row = 0

    def _own(self, result: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in result.items() if k in self._metrics}

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        """Store the epoch's progress metric as an Optuna intermediate value."""
        number = int(trial.config["number"])
        own = self._own(result)
        if "pid" in result:  # which worker process ran it: shows actor reuse in storage
            own["worker_pid"] = int(result["pid"])
        self._last[number] = own
        self._history.setdefault(number, []).append(
            {
                k: v
                for k, v in own.items()
                if k in self._metrics
                and not k.startswith("test_")
                and k not in ("complete", "n_params")
            }
        )
        self._recorder.record_epoch(number, own)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """COMPLETE when the trial reported its last epoch, PRUNED when it was stopped."""
        number = int(trial.config["number"])
        last = self._last.get(number, {})
        history = self._history.get(number, [])
        if last.get("complete"):
            self._recorder.record_complete(number, last, history)
            self._finished(number, "COMPLETE", last)
        else:
            reason = "time_budget" if self.budget_spent() else "scheduler"
            self._recorder.record_pruned(number, last, history, reason)
            self._finished(number, "PRUNED", last)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """FAIL, with the trial's error text."""
        number = int(trial.config["number"])
        error = _error_text(trial)
        self._recorder.record_failed(
            number, str(error), self._last.get(number), self._history.get(number, [])
        )
        self._finished(number, "FAIL", {"error": str(error).strip().splitlines()[-1]})

    def finish_leftovers(self, reason: str) -> None:
        """Record trials Tune never ended (time budget hit, Ctrl-C) as PRUNED."""
        for number in self._summary.numbers:
            if number not in self._summary.states:
                last = self._last.get(number, {})
                self._recorder.record_pruned(number, last, self._history.get(number, []), reason)
                self._finished(number, "PRUNED", last)

    def budget_spent(self) -> bool:
        """Whether the study's wall-time budget has run out."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _finished(self, number: int, state: str, last: dict[str, Any]) -> None:
        self._summary.states[number] = state
        self.failures_in_a_row = self.failures_in_a_row + 1 if state == "FAIL" else 0
        style = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}[state]
        epoch = last.get("epoch", 0)
        detail = ", ".join(
            f"{k} {v:.4g}" for k, v in last.items() if k in ("val_accuracy", "train_seconds")
        )
        if state == "FAIL":
            detail = str(last.get("error", ""))[:120]
        self._console.print(
            f"  trial {number:>3} [{style}]{state:<8}[/] epoch {epoch:>3}  {detail}"
        )


class FailureStreakStopper(_Unpicklable, Stopper):
    """Ends the run when trials keep failing: a broken objective should not eat the budget."""

    def __init__(self, callback: RecorderCallback, limit: int, console: Console) -> None:
        self._callback = callback
        self._limit = limit
        self._console = console
        self._said = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """No single trial is stopped here."""
        return False

    def stop_all(self) -> bool:
        """Stop everything after ``limit`` failures in a row."""
        if self._callback.failures_in_a_row < self._limit:
            return False
        if not self._said:
            self._console.print(
                f"[red]Stopping: {self._limit} trials failed in a row.[/] Their errors are "
                "stored on the trials (user attribute `error`); fix the objective and rerun "
                "to continue the study."
            )
            self._said = True
        return True


def _error_text(trial: Trial) -> str:
    """The trial's traceback: Tune writes it locally first and syncs to storage later."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text(encoding="utf-8", errors="replace")
    return str(trial.get_error() or "the trial raised an error (Tune saved no text)")


def _gpus_per_trial(setting: float | str, concurrency: int) -> float:
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if setting != "auto":
        return float(setting)
    if gpus <= 0:
        return 0.0
    # Pack the concurrent trials onto the GPUs there are: fractional GPUs per trial.
    return min(1.0, gpus / max(1, concurrency))


def _start_ray(address: str | None) -> bool:
    """Start local Ray (or join ``address``); return whether we own the instance.

    Raises:
        InputError: ``--address`` names no reachable Ray cluster.
    """
    if ray.is_initialized():
        return False
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


def _check_resources(study: Study, cpus: float, gpus: float) -> None:
    """Refuse resources Ray cannot give: Tune would wait for them forever."""
    resources = study.spec.resources
    if resources.cpus_per_trial > cpus:
        raise InputError(
            study.source,
            "resources.cpus_per_trial",
            f"{resources.cpus_per_trial:g} CPUs per trial, but Ray has {cpus:g}",
            f"give at most {cpus:g}",
        )
    wanted = resources.gpus_per_trial
    if wanted != "auto" and wanted > gpus:
        raise InputError(
            study.source,
            "resources.gpus_per_trial",
            f"{wanted:g} GPUs per trial, but Ray has {gpus:g}",
            "use `auto` (GPUs where there are any) or at most the GPUs Ray has",
        )


def _concurrency(spec: StudySpec, cpus: float, remaining: int) -> int:
    """Trials side by side: as many as the CPUs hold, capped by the study and by what is left."""
    concurrency = max(1, math.floor(cpus / spec.resources.cpus_per_trial))
    if spec.resources.max_concurrent:
        concurrency = min(concurrency, spec.resources.max_concurrent)
    return min(concurrency, remaining)


def _make_scheduler(spec: StudySpec) -> TrialScheduler:
    """ASHA on one metric, in epochs, up to the full budget; or FIFO (no early stopping)."""
    if spec.scheduler.type == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric=spec.scheduler.metric,
        mode=spec.scheduler.mode,
        max_t=spec.budget.epochs,
        grace_period=min(spec.scheduler.grace_period, spec.budget.epochs),
        reduction_factor=spec.scheduler.reduction_factor,
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
    remaining = spec.budget.trials - recorder.n_finished() - len(leftovers)
    if remaining <= 0:
        summary = RunSummary(interrupted=recorder.fail_leftovers())
        console.print(
            f"Study {spec.name!r} already has its {spec.budget.trials} trials; raise "
            "budget.trials (e.g. `--set budget.trials=N`) to run more."
        )
        return summary

    owns_ray = _start_ray(address)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        per_trial = spec.resources.cpus_per_trial
        _check_resources(study, cpus, float(ray.cluster_resources().get("GPU", 0.0)))
        summary = RunSummary(interrupted=recorder.fail_leftovers())
        if summary.interrupted:
            console.print(f"Marked {len(summary.interrupted)} trial(s) of an interrupted run FAIL.")
        concurrency = _concurrency(spec, cpus, remaining)
        gpus = _gpus_per_trial(spec.resources.gpus_per_trial, concurrency)
        summary.concurrency = concurrency
        console.print(
            f"[bold]Running[/] {remaining} trial(s) of {spec.name!r}, {concurrency} at a time "
            f"({per_trial:g} CPU{f', {gpus:.3g} GPU' if gpus else ''} each), "
            f"up to {spec.budget.epochs} epochs, storage {spec.storage}"
        )
        setup = TrialSetup(
            objective_file=str(spec.objective_path().resolve()),
            data=prepared.data,
            epochs=spec.budget.epochs,
            cpus=per_trial,
            gpus=gpus,
        )
        deadline = time.monotonic() + spec.budget.seconds if spec.budget.seconds else None
        callback = RecorderCallback(
            recorder, summary, set(prepared.objective.METRICS), console, deadline
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, setup=setup), {"cpu": per_trial, "gpu": gpus}
        )
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=RecorderSearcher(recorder, summary),
                scheduler=_make_scheduler(spec),
                num_samples=remaining,
                max_concurrent_trials=concurrency,
                reuse_actors=True,
                time_budget_s=spec.budget.seconds,
            ),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{stamp}",
                storage_path=str((spec.results_dir / "ray").resolve()),
                callbacks=[callback],
                stop=FailureStreakStopper(callback, spec.budget.max_failures_in_a_row, console),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        started = time.monotonic()
        # Trials Tune leaves unended: cut by the time budget after a normal return,
        # otherwise by whatever stopped the run (Ctrl-C, an error in the driver).
        reason = "run_aborted"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tuner.fit()
            # Tune returns normally after a first Ctrl-C too; only a spent budget is the budget.
            if callback.budget_spent():
                reason = "time_budget"
            elif callback.failures_in_a_row >= spec.budget.max_failures_in_a_row:
                reason = "failure_streak"
            else:
                reason = "interrupted"
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        finally:
            summary.wall_seconds = time.monotonic() - started
            callback.finish_leftovers(reason)
    finally:
        if owns_ray:
            ray.shutdown()
    return summary
