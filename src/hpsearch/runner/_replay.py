"""Replay: a whole search against a learning-curve table, on a simulated clock, no training.

The run is the real one minus the workers: the same :class:`RecorderSearcher` asks the
Recorder (and through it the study's Optuna or hyperopt searcher) for each trial, the same
Ray Tune scheduler object (ASHA, HyperBand, median, MOASHA, FIFO, from ``_make_scheduler``)
decides after every epoch, and the same :class:`RecorderCallback` turns reports and endings
into outcomes that the Recorder stores. What Ray's trial runner did is done here by a
discrete-event loop in the order of simulated time, as Syne Tune's simulator backend does:

* a proposed configuration is answered by its nearest recorded neighbour
  (:class:`hpsearch.curves.Neighbours`) among the rows no earlier trial of the study ran,
  whose reports are sent epoch by epoch (see :class:`_Answers` for why not simply the
  nearest); the trial is stored with that row's parameters, so that every result in the
  study, and every result a searcher learns from, belongs to the configuration stored with it;
* each report happens when the neighbour's recorded wall time says it did, counted from the
  trial's start on the simulated clock; ``workers`` trials run side by side, and a freed slot
  is filled at once (the real driver's Ray overhead between trials is not simulated);
* the time budget (``budget.seconds``) is spent on the simulated clock.

The Optuna study that lands is an ordinary one; each trial's last report also says which
row answered it (``replay_row``, ``replay_distance``) and when it ran on the simulated
clock (``replay_started``, ``replay_clock``), kept out of its per-epoch history.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher
from rich.console import Console

from hpsearch import lifecycle
from hpsearch.curves import CurveTable, Neighbours
from hpsearch.errors import InputError
from hpsearch.lifecycle import FailureStreak, RunStop
from hpsearch.runner._driver import (
    RecorderCallback,
    RecorderSearcher,
    RunSummary,
    _DecisionsKept,
    _make_scheduler,
)
from hpsearch.runner._resources import ResourcePlan
from hpsearch.runner._worker import REPORT_KEY

if TYPE_CHECKING:
    from pathlib import Path

    from hpsearch.recorder import Recorder
    from hpsearch.spec import Study


@dataclass(frozen=True)
class ReplayedTrial:
    """One trial of a replay, on the simulated clock.

    Attributes:
        number: The stored trial's number.
        row: The table row that answered it.
        distance: How far the proposal was from that row (0: a recorded configuration).
        started: Simulated second it started.
        ended: Simulated second it ended.
        epochs: Epochs it ran.
        state: How it ended (COMPLETE, PRUNED, FAIL).
    """

    number: int
    row: int
    distance: float
    started: float
    ended: float
    epochs: int
    state: str

    @property
    def seconds(self) -> float:
        """The compute it took: simulated wall seconds from its start to its end."""
        return self.ended - self.started


@dataclass
class ReplaySummary(RunSummary):
    """A :class:`RunSummary` with the simulated clock's account.

    Attributes:
        clock: Simulated seconds the whole replay took (its makespan).
        trials: Every trial it ran, in the order they ended.
    """

    clock: float = 0.0
    trials: list[ReplayedTrial] = field(default_factory=list)

    def took(self) -> str:
        """Simulated time, and the trial compute replayed in how much wall time."""
        compute = sum(trial.seconds for trial in self.trials)
        return (
            f"{self.clock:.0f} simulated s ({compute:.0f} s of trial compute replayed in "
            f"{self.wall_seconds:.1f} s)"
        )


def check_table(study: Study, table: CurveTable, path: Path | str) -> None:
    """Refuse a table that cannot answer this study's trials.

    Raises:
        InputError: Recorded on another space, with fewer epochs than ``budget.epochs``, or
            without a metric the study's objectives or scheduler read.
    """
    spec = study.spec
    recorded = table.meta.get("space_fingerprint")
    if recorded != study.space.fingerprint():
        raise InputError(
            str(path),
            "space_fingerprint",
            f"the table was recorded on space {table.meta.get('space_file')!r} "
            f"(fingerprint {recorded}), but {study.source} searches {study.space.source} "
            f"(fingerprint {study.space.fingerprint()})",
            "replay the study the table was recorded from, or record a table for this space "
            f"(`hpsearch curves record {study.source} --configs N`)",
        )
    if spec.budget.epochs > table.epochs:
        raise InputError(
            str(study.source),
            "budget.epochs",
            f"is {spec.budget.epochs}, but {path} holds {table.epochs} epochs per configuration",
            f"replay with --set budget.epochs={table.epochs} (or fewer), or record longer curves",
        )
    wanted = [o.metric for o in spec.objectives]
    if spec.scheduler.type not in ("fifo", "moasha"):
        wanted.append(spec.scheduler.metric)
    missing = [metric for metric in wanted if metric not in table.metrics]
    if missing:
        raise InputError(
            str(path),
            "metrics",
            f"holds no {missing} (it has {sorted(table.metrics)})",
            "choose objectives and a scheduler metric the table recorded, or record the study "
            "that reports them",
        )
    if not table.rows:
        raise InputError(str(path), "params", "holds no configuration", "record a table first")


class _Answers:
    """Which table row answers each proposal: the nearest one the study has not run yet.

    A real search never trains the same configuration twice by chance: a searcher that
    proposes near a good point gets a new configuration, and a new measurement. The nearest
    row alone would answer every proposal in that row's neighbourhood with the same curve,
    so a searcher would pay again and again for a result it already has, which no real
    search does: on the 200-row xgamma table, 69% of the default TPE's trials and 42% of
    random search's re-ran a row their search had run (nearest-row cells differ widely in
    size in a sparse conditional space). So a row answers once per study, and a proposal
    whose nearest row has run gets the nearest row that has not (once every row has run, the
    nearest again).

    The trial is stored with the row's parameters (see :meth:`snap`), so a proposal of the
    very same parameters as an earlier trial (a cut trial run again) is that trial's row.
    """

    def __init__(self, table: CurveTable, neighbours: Neighbours, recorder: Recorder) -> None:
        self._table = table
        self._neighbours = neighbours
        self._rows: dict[str, int] = {}
        self.answered: dict[int, tuple[int, float]] = {}
        for trial in recorder.study.get_trials(deepcopy=False):
            row = trial.user_attrs.get("replay_row")
            if isinstance(row, int):  # a resumed replay: its rows have run
                self._rows.setdefault(self._key(trial.params), row)

    @staticmethod
    def _key(flat: dict[str, Any]) -> str:
        return json.dumps(flat, sort_keys=True, default=str)

    def snap(self, number: int, proposal: dict[str, Any]) -> dict[str, Any]:
        """The parameters trial ``number`` runs with: those of the row that answers ``proposal``.

        The row and the proposal's distance from it are kept in :attr:`answered`.
        """
        key = self._key(proposal)
        if key in self._rows:
            row, distance = self._rows[key], 0.0
        else:
            row, distance = self._neighbours.nearest(proposal, taken=set(self._rows.values()))
        flat = dict(self._table.params[row])
        self._rows[self._key(flat)] = row
        self.answered[number] = (row, distance)
        return flat


class _Controller:
    """What Ray's schedulers ask of Tune's trial runner: the trials, live and all."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []
        self.live: set[Trial] = set()

    def get_trials(self) -> list[Trial]:
        return self.trials

    def get_live_trials(self) -> set[Trial]:
        return self.live


@dataclass
class _Running:
    """A trial on the simulated clock: which row answers it and when each epoch ends."""

    trial: Trial
    number: int
    row: int
    distance: float
    started: float
    ends: np.ndarray  # simulated second at which each epoch's report arrives
    last: int  # epochs it reports: the budget's, or fewer for a row that failed
    completes: bool  # its last report is the budget's last epoch
    next: int = 1


def replay_study(
    study: Study,
    recorder: Recorder,
    table: CurveTable,
    *,
    workers: int,
    console: Console | None = None,
) -> ReplaySummary:
    """Run the trials the study's budget still allows against ``table``, on simulated time.

    Args:
        study: The checked study (see :func:`check_table`).
        recorder: The writer of results, already holding the stored study.
        table: The learning curves that answer every trial.
        workers: Trials run side by side on the simulated clock.
        console: Where to print one line per trial (a quiet console for benchmarks).

    Returns:
        What the replay did, on the simulated clock.
    """
    console = console or Console(stderr=True)
    spec = study.spec
    leftovers = recorder.fail_leftovers()
    remaining = spec.budget.trials - recorder.n_counted()
    plan = ResourcePlan(cpus=0.0, gpus=0.0, slots=workers, concurrency=workers)
    summary = ReplaySummary(interrupted=leftovers, plan=plan)
    if remaining <= 0:
        console.print(f"Study {spec.name!r} already has its {spec.budget.trials} trials.")
        return summary
    summary.requeued = recorder.rerun_cut(remaining)
    answers = _Answers(table, Neighbours(table, study.space), recorder)
    now = 0.0
    run_stop = RunStop(
        FailureStreak(spec.budget.max_failures_in_a_row),
        deadline=spec.budget.seconds,
        clock=lambda: now,
    )
    decisions = _DecisionsKept()
    scheduler = _make_scheduler(spec, decisions)
    searcher = RecorderSearcher(
        recorder, summary, run_stop, remaining=remaining, concurrency=workers, snap=answers.snap
    )
    callback = RecorderCallback(recorder, summary, spec, run_stop, decisions, console)
    controller = _Controller()
    # Ray's schedulers are annotated with Tune's controller; they use only what _Controller has.
    runner: Any = controller
    events: list[tuple[float, int, _Running]] = []
    order = itertools.count()
    ids = itertools.count()
    epochs = spec.budget.epochs
    started_wall = time.monotonic()

    def start() -> bool:
        """Fill the free slots at ``now``; False once the searcher says the run is finished."""
        while True:
            trial_id = f"replay_{next(ids):05d}"
            config = searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                return False
            if not isinstance(config, dict):
                return True
            number = int(config["number"])
            row, distance = answers.answered[number]
            reported = min(table.reported(row), epochs)
            trial = Trial("replay", config=config, trial_id=trial_id, stub=True)
            trial.set_status(Trial.RUNNING)
            controller.trials.append(trial)
            controller.live.add(trial)
            scheduler.on_trial_add(runner, trial)
            running = _Running(
                trial=trial,
                number=number,
                row=row,
                distance=distance,
                started=now,
                ends=now + np.cumsum(table.epoch_seconds(row))[:reported],
                last=reported,
                completes=reported == epochs,
            )
            # A row that failed before its first report fails at once.
            heapq.heappush(
                events, (float(running.ends[0]) if reported else now, next(order), running)
            )

    def end(running: _Running) -> None:
        """Note the trial's account, once the callback has decided and stored its outcome."""
        controller.live.discard(running.trial)
        summary.trials.append(
            ReplayedTrial(
                number=running.number,
                row=running.row,
                distance=running.distance,
                started=running.started,
                ended=now,
                epochs=running.next - 1,
                state=summary.outcomes[running.number].state,
            )
        )

    def cut_all(reason: str) -> None:
        for _, _, running in sorted(events, key=lambda event: event[:2]):
            running.trial.set_status(Trial.TERMINATED)
        callback.finish_leftovers(reason)
        for _, _, running in sorted(events, key=lambda event: event[:2]):
            end(running)
        events.clear()

    searching = start()
    while events:
        at, _, running = heapq.heappop(events)
        deadline = spec.budget.seconds
        if deadline is not None and at > deadline:
            now = float(deadline)
            heapq.heappush(events, (at, next(order), running))
            run_stop.check()
            cut_all(lifecycle.TIME_BUDGET)
            break
        now = at
        trial, number = running.trial, running.number
        if running.last == 0 or running.next > running.last:
            # The recorded run failed here: after its last report (or before any).
            trial.set_status(Trial.ERROR)
            scheduler.on_trial_error(runner, trial)
            searcher.on_trial_complete(trial.trial_id, error=True)
            callback.fail(number, table.error[running.row] or "the recorded trial failed")
            end(running)
        else:
            epoch = running.next
            own = table.report(running.row, epoch)
            own.update(
                replay_row=running.row,
                replay_distance=running.distance,
                replay_started=running.started,
                replay_clock=now,
            )
            if running.completes and epoch == running.last:
                own["complete"] = True
            result = {
                **own,
                REPORT_KEY: own,
                "training_iteration": epoch,
                "time_total_s": now - running.started,
                "trial_id": trial.trial_id,
            }
            decision = scheduler.on_trial_result(runner, trial, result)
            if decision != TrialScheduler.STOP:
                searcher.on_trial_result(trial.trial_id, result)
            callback.on_trial_result(0, controller.trials, trial, result)
            running.next += 1
            if decision == TrialScheduler.STOP or own.get("complete"):
                scheduler.on_trial_complete(runner, trial, result)
                searcher.on_trial_complete(trial.trial_id, result)
                trial.set_status(Trial.TERMINATED)
                callback.on_trial_complete(0, controller.trials, trial)
                end(running)
            else:
                following = (
                    float(running.ends[running.next - 1]) if running.next <= running.last else now
                )
                heapq.heappush(events, (following, next(order), running))
        reason = run_stop.check()
        if reason is not None and events:
            cut_all(reason)
            break
        if searching:
            searching = start()
    summary.clock = now
    summary.wall_seconds = time.monotonic() - started_wall
    summary.stop_reason = run_stop.reason
    return summary
