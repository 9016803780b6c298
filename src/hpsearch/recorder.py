"""The Recorder: the one writer of a study's results into Optuna storage.

Ray's ``OptunaSearch`` records ASHA-stopped trials as COMPLETE with half-trained values, writes
no intermediate values for multi-objective studies, and leaves a trial RUNNING when ``tell``
fails. Those are exactly the numbers a Pareto front must not be built from. So hpsearch asks
Optuna for parameters through this class and writes every ending itself, exactly as the one
:class:`~hpsearch.lifecycle.Outcome` decided for the trial says:

* COMPLETE only when the trial trained its full epoch budget, with the objectives' values;
* PRUNED when the scheduler stopped it, with no value (Optuna's ``tell`` would copy the last
  intermediate value, the *scheduler's* metric, into a single-objective study's value) and the
  epochs reached and last metrics kept as user attributes;
* FAIL with the error text, or with the reason the run cut it short.

Every ended trial carries its ``stop_reason``. Per-epoch values of the scheduler's metric are
stored as intermediate values, through the storage API because ``Trial.report`` refuses
multi-objective studies. The stored study reads with Optuna's own tools (``optuna trials``,
optuna-dashboard) like any other.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch._version import __version__
from hpsearch.errors import InputError
from hpsearch.lifecycle import (
    INTERRUPTED,
    NOT_JUDGED,
    WORKER_LOST,
    Outcome,
    counts_against_budget,
    decide,
)
from hpsearch.results import _rdb
from hpsearch.results.storage import HISTORY_KEY, mask_url, model_path, scrub_password
from hpsearch.searchers import _optuna, make_searcher
from hpsearch.seeding import derive_seed
from hpsearch.spec import Study

#: Result keys that are bookkeeping, not metrics worth keeping on a trial.
_NOT_METRICS = frozenset({"epoch", "complete", "done"})
#: Longest error text kept on a FAIL trial: the end of a traceback says the most.
_MAX_ERROR_CHARS = 4000
#: Terminal colour and cursor codes (Ray colours its tracebacks): noise in stored text.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: A RUNNING trial whose driver has not marked it alive for this many beats is stale.
STALE_AFTER_BEATS = 3
#: An epoch that comes sooner than this after its trial's last write waits for the next write
#: (a later epoch's, or the ending): quick epochs cost one transaction instead of one each,
#: while any real training (seconds per epoch) still shows in the live views as it goes.
LIVE_SECONDS = 0.5


@dataclass(frozen=True)
class TrialTicket:
    """What the Recorder hands out for one new trial.

    Attributes:
        number: Optuna's trial number, the trial's name everywhere in hpsearch.
        params: Nested parameters, as the objective receives them.
        seed: The trial's seed, derived from the study's master seed and ``number``.
    """

    number: int
    params: dict[str, Any]
    seed: int


def open_storage(
    url: str, *, source: str | Path = "storage", heartbeat_seconds: float | None = None
) -> optuna.storages.BaseStorage:
    """Open an Optuna RDB storage, creating a SQLite file's folder first.

    Args:
        url: SQLAlchemy URL.
        source: What to name in an error (the study file, ``--storage``).
        heartbeat_seconds: Turn on Optuna's trial heartbeat (a driver that runs trials):
            a RUNNING trial whose heartbeat is :data:`STALE_AFTER_BEATS` beats old is taken
            for one whose driver died, so a second driver on the same study never ends a live
            driver's trials. None: read-only uses (report, dashboard).

    Raises:
        InputError: The URL is not one SQLAlchemy can open.
    """
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        if str(path) not in ("", ":memory:"):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file where the folder should be, no permission
                raise InputError(
                    source,
                    "storage",
                    f"cannot make the folder {path.parent} of storage {mask_url(url)!r}: "
                    f"{exc.strerror or exc}",
                    "give a storage in a folder that exists or can be made, e.g. "
                    "sqlite:///results/hpsearch.db",
                ) from exc
    beat = None if heartbeat_seconds is None else max(1, math.ceil(heartbeat_seconds))
    try:
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=_engine_kwargs(url),
                        heartbeat_interval=beat,
                        grace_period=None if beat is None else STALE_AFTER_BEATS * beat,
                    )
                break
            except Exception as exc:
                # Two drivers started together on an empty database (or a driver and a
                # reader) both create Optuna's tables; the slower one fails on a duplicate
                # (PostgreSQL: the enum type; SQLite: alembic's version row, or the lock).
                # By the next attempt the tables exist and it only reads them.
                if not _lost_creation_race(exc) or attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except Exception as exc:
        # SQLAlchemy's text goes on with the SQL and a link (the driver's, with a hint): the
        # first line says what failed, and the message stays one line.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            source,
            "storage",
            f"cannot open storage {mask_url(url)!r}: {type(exc).__name__}: "
            f"{scrub_password(first, url)}",
            "give an SQLAlchemy URL such as sqlite:///results/hpsearch.db or "
            "postgresql+psycopg2://user:pass@host/db, and check the server is up",
        ) from exc
    if url.startswith("sqlite"):
        _write_ahead(storage)
    return storage


#: Tries to open a storage whose tables another driver may be creating at the same moment.
_CREATE_ATTEMPTS = 4


def _lost_creation_race(exc: Exception) -> bool:
    """Whether ``exc`` is another process having created Optuna's schema first."""
    from sqlalchemy import exc as sql

    text = str(exc).lower()
    races = ("already exists", "duplicate", "unique constraint", "database is locked")
    return isinstance(exc, sql.IntegrityError | sql.ProgrammingError | sql.OperationalError) and (
        any(race in text for race in races)
    )


def _write_ahead(storage: optuna.storages.RDBStorage) -> None:
    """Put SQLite in write-ahead-log mode with normal syncing.

    The driver writes every epoch of every trial from Tune's event loop, and each write is a
    transaction: in SQLite's default rollback-journal mode with full syncing they took about
    half of hpsearch's per-trial overhead (measured: 79 ms of storage time per 5-epoch trial,
    42 ms in WAL mode). WAL also lets optuna-dashboard read while a run writes. The cost: a
    power cut (not a crash of hpsearch) may lose the last few writes; the file stays intact.
    """
    from sqlalchemy import event

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # connections made before the listener get it on reconnect


def _engine_kwargs(url: str) -> dict[str, Any]:
    # SQLite: wait for a reader (the dashboard) instead of failing with "database is locked".
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


class Recorder:
    """Owns the stored study; every write of a trial goes through it.

    Args:
        study: The validated study (file, spec and space).
        storage: An opened storage (see :func:`open_storage`).
        input_stats: The input normalisation every trial of the study uses, stored on the
            study with its provenance (an exported model needs it).
        provenance: More of what made the study's results, stored with it when the study is
            created: its task (metrics, the report's table columns) and its data (files,
            shapes, the split's fingerprint); see :meth:`hpsearch.prepare.PreparedStudy.provenance`.
    """

    def __init__(
        self,
        study: Study,
        storage: optuna.storages.BaseStorage,
        *,
        input_stats: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        spec = study.spec
        self._provenance = dict(provenance or {})
        self._provenance.setdefault(
            "data_keys", {"x_key": spec.data.x_key, "y_key": spec.data.y_key}
        )
        self._cut_trials = spec.resume.cut_trials
        self._beats = getattr(storage, "heartbeat_interval", None) is not None
        self.name = spec.name
        self.storage = storage
        self._space = study.space
        self._metrics = [o.metric for o in spec.objectives]
        self._epochs = spec.budget.epochs
        self._progress_metric = spec.scheduler.metric
        self._master_seed = spec.seed
        self._input_stats = dict(input_stats or {})
        self._searcher = make_searcher(study)
        directions = [o.direction for o in spec.objectives]
        self.study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            sampler=self._searcher.sampler(0),
            directions=directions,
            load_if_exists=True,
        )
        self._check_compatible(study)
        self._study_id = storage.get_study_id_from_name(spec.name)
        self._trial_ids: dict[int, int] = {}
        # Epoch values not written yet, and when each running trial was last written.
        self._pending: dict[int, dict[int, float]] = {}
        self._written: dict[int, float] = {}
        self._keep_models = spec.keep_models
        self._worker_retries = spec.resources.worker_retries
        self.models_dir: Path | None = None
        if spec.keep_models != "none":
            self.models_dir = (spec.results_dir / "models" / spec.name).resolve()
            models = {"dir": str(self.models_dir), "keep": spec.keep_models}
            if self.study.user_attrs.get("models") != models:
                self.study.set_user_attr("models", models)

    # -- the study -------------------------------------------------------------------------

    def _check_compatible(self, study: Study) -> None:
        """Refuse to mix a different space or objectives into an existing study."""
        stored = self.study.user_attrs
        fingerprint = study.space.fingerprint()
        wanted = [d.name.lower() for d in self.study.directions]
        asked = [o.direction for o in study.spec.objectives]
        if wanted != asked or stored.get("objectives", self._metrics) != self._metrics:
            raise InputError(
                study.source,
                "objectives",
                f"study {self.name!r} in storage optimizes {stored.get('objectives')} "
                f"({wanted}), not {self._metrics} ({asked})",
                "give this search its own study name, e.g. `--set name=NEWNAME`",
            )
        if stored.get("space_fingerprint", fingerprint) != fingerprint:
            raise InputError(
                study.source,
                "space",
                f"study {self.name!r} in storage was searched over a different space "
                f"(fingerprint {stored['space_fingerprint']}, now {fingerprint})",
                "give this search its own study name, e.g. `--set name=NEWNAME`",
            )
        self._check_same_inputs(study, stored)
        if "space_fingerprint" not in stored:
            provenance = {
                "hpsearch_version": __version__,
                "task": study.spec.task,
                "objectives": self._metrics,
                "space_fingerprint": fingerprint,
                "space": study.space.to_dict(),
                "space_file": str(study.space.source),
                "study_file": str(study.source),
                "seed": study.spec.seed,
                "epochs": study.spec.budget.epochs,
                "progress_metric": self._progress_metric,
                "progress_mode": study.spec.scheduler.mode,
                "searcher": study.spec.searcher.type,
                "scheduler": study.spec.scheduler.model_dump(mode="json"),
                "budget": study.spec.budget.model_dump(mode="json"),
                "searcher_objectives": self._searcher.objectives_note(),
                "input_stats": self._input_stats,
                **self._provenance,
            }
            for key, value in provenance.items():
                self.study.set_user_attr(key, value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # optuna-dashboard and Optuna's plots label the objectives with these.
                self.study.set_metric_names(self._metrics)

    def _comparable(self, study: Study) -> dict[str, Any]:
        """What makes two runs' trials comparable, as stored on the study (dotted keys)."""
        spec = study.spec
        now: dict[str, Any] = {
            "task": spec.task,
            "seed": spec.seed,
            "epochs": spec.budget.epochs,
            "data_keys": self._provenance.get("data_keys"),
        }
        data = self._provenance.get("data")
        if isinstance(data, Mapping):
            for key in ("files", "split_fingerprint", "max_events"):
                now[f"data.{key}"] = data.get(key)
        return now

    def _check_same_inputs(self, study: Study, stored: Mapping[str, Any]) -> None:
        """Refuse to continue a study with other data, split, task, seed or epoch budget.

        Trials trained on other events, another split or for another number of epochs are not
        comparable with the stored ones, yet they would share one Pareto front and one
        searcher's history. Only keys stored with the study are compared, so studies made by
        an older hpsearch (which stored fewer) still resume.

        Raises:
            InputError: A stored setting differs from this run's; the message names the key,
                both values, and the two ways out.
        """
        setting = {
            "task": "task",
            "seed": "seed",
            "epochs": "budget.epochs",
            "data_keys": "data.x_key / data.y_key",
            "data.files": "data.path",
            "data.split_fingerprint": "data.split",
            "data.max_events": "data.max_events",
        }
        for key, new in self._comparable(study).items():
            head, _, tail = key.partition(".")
            old: Any = stored.get(head, _MISSING)
            if tail:
                old = old.get(tail, _MISSING) if isinstance(old, Mapping) else _MISSING
            if old is _MISSING or new is None or _same(old, new):
                continue
            raise InputError(
                study.source,
                setting[key],
                f"study {self.name!r} in storage was run with {setting[key]} = {old!r}, this "
                f"run has {new!r}: its trials would not be comparable with the stored ones",
                f"restore {setting[key]} to the stored value, or give this search its own "
                "study name, e.g. `--set name=NEWNAME`",
            )

    def n_counted(self) -> int:
        """Trials that count against ``budget.trials``: every ended trial the run did not cut.

        A trial cut by the time budget, Ctrl-C, the failure streak or a killed run was never
        judged, so it leaves its place in the budget to a trial that will be.
        """
        trials = self.study.get_trials(deepcopy=False)
        return sum(
            counts_against_budget(t.state.name, t.user_attrs.get("stop_reason")) for t in trials
        )

    def budget_use(self) -> tuple[int, int]:
        """Stored trials counted against the budget, and RUNNING ones, of every driver.

        Counted by the database, as :func:`counts_against_budget` says: the finished trials
        less the failures the run cut (not judged).
        """
        states, cut = _rdb.count_states(
            self.storage, self._study_id, failed_with=("stop_reason", NOT_JUDGED)
        )
        counted = sum(n for state, n in states.items() if counts_against_budget(state, None))
        counted -= cut
        return counted, states["RUNNING"]

    def note_run(
        self, nodes: list[Mapping[str, Any]], *, address: str | None, concurrency: int | None = None
    ) -> None:
        """Record what this run runs on: the Ray nodes and the package versions.

        Appended to the study's ``runs`` (a resumed study may have run on other machines);
        ``hardware`` and ``versions`` hold the latest, which the report shows.

        Args:
            nodes: The alive nodes, as ``ray.nodes()`` gives them.
            address: The Ray cluster joined (None: local Ray).
            concurrency: Trials this run runs side by side (a learning-curve table's replay
                simulates as many by default).
        """
        from hpsearch import provenance

        versions = provenance.package_versions()
        run: dict[str, Any] = {
            "ray_address": address or "local",
            "nodes": [provenance.describe_node(node) for node in nodes],
            "versions": versions,
        }
        if concurrency is not None:
            run["concurrency"] = concurrency
        self._append_run(run)
        self.study.set_user_attr("hardware", provenance.summarize(nodes))
        self.study.set_user_attr("versions", versions)

    def note_replay(self, replay: Mapping[str, Any], *, baseline: Any = None) -> None:
        """Record that this study's trials are replayed from a learning-curve table.

        Appended to the study's ``runs`` like a run's nodes, so the report's provenance says
        the trials were not trained here; the recording's baseline stands for the study's.
        """
        self._append_run({"replay": dict(replay)})
        self.study.set_user_attr("replay", _jsonable(dict(replay)))
        if baseline is not None and "baseline" not in self.study.user_attrs:
            self.study.set_user_attr("baseline", _jsonable(baseline))

    def _append_run(self, run: Mapping[str, Any]) -> None:
        """Add ``run``, stamped with its start, to the study's ``runs`` (one per run)."""
        from datetime import datetime

        stamped = {"started": datetime.now().isoformat(timespec="seconds"), **run}
        runs = self.study.user_attrs.get("runs")
        runs = [*runs, stamped] if isinstance(runs, list) else [stamped]
        self.study.set_user_attr("runs", _jsonable(runs))

    @contextlib.contextmanager
    def budget_lock(self) -> Iterator[None]:
        """Hold the study's lock, which every driver takes to check the budget and ask."""
        with _rdb.study_lock(self.storage, self.name):
            yield

    def leftovers(self) -> list[int]:
        """Trials left RUNNING by a run that was killed."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return [trial.number for trial in running]

    def fail_leftovers(self) -> list[int]:
        """End the trials a dead driver left RUNNING as cut (FAIL, not counted).

        Only trials whose heartbeat stopped are ended: a RUNNING trial of another driver that
        is alive on the same study keeps running (ending every RUNNING trial, as hpsearch once
        did, failed a live run's trials under it). Without a heartbeat (a storage opened
        without one) every RUNNING trial is taken for a leftover, as before.

        Returns:
            The numbers of the trials ended now.
        """
        if self._beats:
            # Optuna's fail_stale_trials would end them FAIL with no reason (a finished trial
            # takes no more attributes): the reason and the state are written together.
            stale = self.storage._get_stale_trial_ids(self._study_id)  # type: ignore[attr-defined]
            stale += self._unbeaten()
            ended = []
            for trial_id in stale:
                trial = self.storage.get_trial(trial_id)
                reached = max(trial.intermediate_values, default=0)
                outcome = decide(
                    {"epoch": reached},
                    objectives=self._metrics,
                    epochs=self._epochs,
                    run_stop=INTERRUPTED,
                )
                attrs = {k: _jsonable(v) for k, v in _final_attrs(outcome).items()}
                try:
                    _rdb.write(self.storage, trial_id, user_attrs=attrs, state=TrialState.FAIL)
                    ended.append(trial.number)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another driver ended it first
            return ended
        numbers = self.leftovers()
        for number in numbers:
            outcome = decide(
                None, objectives=self._metrics, epochs=self._epochs, run_stop=INTERRUPTED
            )
            self.finish(number, outcome, history=None)
        return numbers

    def _unbeaten(self) -> list[int]:
        """RUNNING trials that never had a heartbeat and started long ago: a dead driver's.

        Optuna takes a trial without a heartbeat for a live one, but hpsearch records one when
        it asks for the trial; such trials were left by an hpsearch before heartbeats (or a
        driver killed within its first moment), and would otherwise stay RUNNING for good.
        """
        from datetime import datetime, timedelta

        import sqlalchemy

        grace = timedelta(seconds=self.storage.grace_period)  # type: ignore[attr-defined]
        with self.storage.engine.connect() as connection:  # type: ignore[attr-defined]
            rows = connection.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))
            beaten = {row[0] for row in rows}
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return [
            t._trial_id
            for t in running
            if t._trial_id not in beaten
            and t.datetime_start is not None
            and datetime.now() - t.datetime_start > grace
        ]

    def beat(self, numbers: list[int]) -> None:
        """Mark this driver's running trials alive (see :meth:`fail_leftovers`)."""
        if not self._beats:
            return
        for number in numbers:
            self.storage.record_heartbeat(self._trial_id(number))  # type: ignore[attr-defined]

    def rerun_cut(self, limit: int) -> list[int]:
        """Queue the parameters of trials the run cut, so they are judged after all.

        A trial cut by Ctrl-C, the time budget, a dead driver or a lost worker never showed
        what its configuration is worth; with ``resume.cut_trials: rerun`` (the default) the
        next run trains the same parameters again, as a new trial marked ``rerun_of`` (and
        with the cut trial's seed). The cut trial stays FAIL and uncounted, so the pair
        counts once. A cut trial already queued (some trial has its ``rerun_of``) is not
        queued again.

        Args:
            limit: At most this many (the trials the budget still allows).

        Returns:
            The numbers of the cut trials queued now.
        """
        if self._cut_trials != "rerun" or limit <= 0:
            return []
        trials = self.study.get_trials(deepcopy=False)
        queued = {t.user_attrs.get("rerun_of") for t in trials}
        cut = [
            t
            for t in trials
            if t.state == TrialState.FAIL
            and t.user_attrs.get("stop_reason") in NOT_JUDGED
            and t.number not in queued
            and not self._retries_spent(t)
            # Cut before its parameters were stored (a driver killed mid-ask): it never ran,
            # and there is nothing to run again.
            and t.params
        ][:limit]
        for trial in cut:
            attrs = {"rerun_of": trial.number}
            if "enqueued_as" in trial.user_attrs:
                attrs["enqueued_as"] = trial.user_attrs["enqueued_as"]
            self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)
        return [t.number for t in cut]

    def retry_lost(self, number: int, limit: int) -> int | None:
        """Queue a trial whose Ray worker was lost again at once, unless its retries are spent.

        A worker killed under a trial (the OOM killer, a segfault, SIGKILL) says nothing about
        the configuration; left to :meth:`rerun_cut`, it would stay unjudged until the next
        run. The retry is a new WAITING trial with the same parameters, marked ``rerun_of``
        (so :meth:`ask` gives it the lost trial's seed, and :meth:`rerun_cut` does not queue
        the lost trial again) and ``worker_retry``. A configuration that keeps losing its
        worker may be what kills it (a model too big for memory), so it is retried at most
        ``limit`` times along its chain of reruns (see :meth:`worker_retries_done`).

        Call it before :meth:`finish` stores the lost trial.

        Args:
            number: The trial whose worker was lost.
            limit: At most this many retries (``resources.worker_retries``).

        Returns:
            Which retry was queued now (1 for the first), or None when none was.
        """
        done = self.worker_retries_done(number)
        if done >= limit:
            return None
        trial = self.storage.get_trial(self._trial_id(number))
        attrs: dict[str, Any] = {"rerun_of": number, "worker_retry": done + 1}
        if "enqueued_as" in trial.user_attrs:
            attrs["enqueued_as"] = trial.user_attrs["enqueued_as"]
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)
        return done + 1

    def _retries_spent(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial`` lost its worker after ``resources.worker_retries`` retries.

        Its configuration may be what kills the worker, so no later run tries it again.
        """
        return (
            trial.user_attrs.get("stop_reason") == WORKER_LOST
            and self.worker_retries_done(trial.number) >= self._worker_retries
        )

    def worker_retries_done(self, number: int) -> int:
        """How often trial ``number``'s configuration was tried again after losing its worker.

        Counted along the chain of ``rerun_of`` from the trial back: each earlier trial of the
        chain that lost its worker (``stop_reason: worker_lost``) was followed by a retry. The
        chain, not the trial's own ``worker_retry``, so that a rerun queued by the next run
        (:meth:`rerun_cut`, which does not carry ``worker_retry``) keeps the count.
        """
        seen = {number}
        done = 0
        previous = self.storage.get_trial_user_attrs(self._trial_id(number)).get("rerun_of")
        while isinstance(previous, int) and previous not in seen:
            seen.add(previous)
            attrs = self.storage.get_trial_user_attrs(self._trial_id(previous))
            done += attrs.get("stop_reason") == WORKER_LOST
            previous = attrs.get("rerun_of")
        return done

    def enqueue(self, configs: list[tuple[str, dict[str, Any]]]) -> int:
        """Queue hand-written configurations to run before the searcher's own proposals.

        Each becomes a WAITING trial that the next ``ask`` takes as it is, whichever searcher
        the study uses. A configuration the study already holds (an earlier run enqueued it)
        is not queued again.

        Returns:
            How many were queued now.
        """
        before = _rdb.count_trials(self.storage, self._study_id)
        for label, flat in configs:
            self.study.enqueue_trial(flat, user_attrs={"enqueued_as": label}, skip_if_exists=True)
        return _rdb.count_trials(self.storage, self._study_id) - before

    # -- trials ----------------------------------------------------------------------------

    def ask(
        self,
        log_file: Callable[[int], Path] | None = None,
        *,
        snap: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> TrialTicket:
        """Create a RUNNING trial with parameters from the study's searcher.

        The sampler is seeded for the number the new trial will get (the count of stored
        trials), so the stored history alone decides the parameters.

        Args:
            log_file: Where the trial's own output goes, given its number; stored on the trial
                (user attribute ``log_file``).
            snap: Given the trial's number and the searcher's proposal (flat), the
                configuration of the same space that will really run; the trial is stored
                with it. A replay answers from recorded configurations only, and the record
                must pair each result with the configuration that produced it, as a real run
                does: a searcher that learnt the proposal's parameters with another
                configuration's result would model a blurred space.
        """
        states, _ = _rdb.count_states(self.storage, self._study_id)
        upcoming = sum(states.values())  # the new trial's number
        self.study.sampler = self._searcher.sampler(upcoming)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # The heartbeat is recorded by the driver (see `beat`), not by Study.optimize.
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            if states["WAITING"]:
                trial = self.study.ask()  # pops the queued trial (Optuna handles the races)
            else:
                # What ``ask`` does when nothing is queued, without its look for queued
                # trials: that look loads every running trial, a third of a quick trial's ask.
                self.study._thread_local.cached_all_trials = None
                created = self.study._storage.create_new_trial(self._study_id)
                trial = optuna.Trial(self.study, created)
            # The parameters are kept and written with the seed in one transaction.
            buffer = _rdb.ParamBuffer(trial.storage)
            trial.storage = buffer  # type: ignore[assignment]
            params = _optuna.suggest(self._space, trial)
            if snap is not None:
                proposal = {n: d.to_external_repr(v) for n, (v, d) in buffer.params.items()}
                flat = snap(trial.number, proposal)
                every = _optuna.distributions(self._space)
                buffer.params = {
                    name: (every[name].to_internal_repr(value), every[name])
                    for name, value in flat.items()
                }
                params = self._space.decode(flat)
        self._trial_ids[trial.number] = trial._trial_id
        self._written[trial.number] = time.monotonic()
        seed = derive_seed(self._master_seed, "trial", trial.number)
        rerun_of = trial.user_attrs.get("rerun_of")
        if isinstance(rerun_of, int):
            # The same parameters and the same seed: the cut trial, trained again.
            original = self.study._storage.get_trial_user_attrs(self._trial_id(rerun_of))
            if isinstance(original.get("seed"), int):
                seed = original["seed"]
        _rdb.write(
            self.storage,
            trial._trial_id,
            params=buffer.params,
            user_attrs={
                "seed": seed,
                "hpsearch_version": __version__,
                **({"log_file": str(log_file(trial.number))} if log_file else {}),
            },
            first_heartbeat=self._beats,
        )
        return TrialTicket(number=trial.number, params=params, seed=seed)

    def record_epoch(self, number: int, result: Mapping[str, Any]) -> None:
        """Store one epoch's value of the progress metric as an intermediate value.

        Written at once unless the trial was written less than :data:`LIVE_SECONDS` ago; then
        it goes with the trial's next write. Nothing reads the values in between: the
        schedulers decide on the reports themselves, and the searchers read a trial's curve
        after its ending, which writes whatever is pending.
        """
        value: Any = result.get(self._progress_metric)
        epoch = result.get("epoch")
        if not (isinstance(epoch, int) and _finite(value)):
            return
        pending = self._pending.setdefault(number, {})
        pending[epoch] = float(value)
        now = time.monotonic()
        if now - self._written.get(number, -math.inf) < LIVE_SECONDS:
            return
        _rdb.write(self.storage, self._trial_id(number), intermediate=self._pending.pop(number))
        self._written[number] = now

    def finish(self, number: int, outcome: Outcome, history: Any) -> None:
        """End a trial as its outcome says: state, values and the attributes that explain it.

        One transaction writes it all (see :mod:`hpsearch.results._rdb`). Not Optuna's
        ``tell``: it writes each attribute on its own, and for a single-objective study it
        would store the last intermediate value (the scheduler's metric) as a PRUNED trial's
        value. The searcher's ``after_trial`` hook, which ``tell`` would call, is called here.
        """
        trial_id = self._trial_id(number)
        state = TrialState[outcome.state]
        values = list(outcome.values or ()) if state == TrialState.COMPLETE else None
        sampler = self.study.sampler
        pending = self._pending.pop(number, {})
        self._written.pop(number, None)
        # As Optuna's ``tell`` does: the next read of the trials sees this ending.
        self.study._thread_local.cached_all_trials = None
        if type(sampler).after_trial is not optuna.samplers.BaseSampler.after_trial:
            frozen = self.storage.get_trial(trial_id)
            if pending:
                frozen = copy.copy(frozen)
                frozen.intermediate_values = {**frozen.intermediate_values, **pending}
            sampler.after_trial(self.study, frozen, state, values)
        _rdb.write(
            self.storage,
            trial_id,
            intermediate=pending,
            user_attrs={k: _jsonable(v) for k, v in _final_attrs(outcome).items()},
            system_attrs={HISTORY_KEY: _jsonable(history)} if history else None,
            state=state,
            values=values,
        )
        if state == TrialState.COMPLETE and self._keep_models == "pareto":
            self._prune_models()

    def _prune_models(self) -> None:
        """Delete the kept models of COMPLETE trials that are not on the Pareto front.

        Only finished trials are judged: a trial still running (or one whose ending is not
        recorded yet) may have saved its model already, and may yet join the front.
        """
        if self.models_dir is None:
            return
        front = {trial.number for trial in self.study.best_trials}
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.number not in front:
                model_path(self.models_dir, trial.number).unlink(missing_ok=True)

    def _trial_id(self, number: int) -> int:
        if number not in self._trial_ids:
            self._trial_ids[number] = self.storage.get_trial_id_from_study_id_trial_number(
                self._study_id, number
            )
        return self._trial_ids[number]


def _final_attrs(outcome: Outcome) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        key: value for key, value in outcome.last.items() if key not in _NOT_METRICS
    }
    attrs["epochs_reached"] = outcome.epochs
    attrs["stop_reason"] = outcome.reason
    if outcome.error is not None:
        attrs["error"] = _ANSI.sub("", outcome.error)[-_MAX_ERROR_CHARS:]
    return attrs


_MISSING = object()


def _same(old: Any, new: Any) -> bool:
    """Stored (JSON) and current values are equal: lists and tuples alike."""
    return bool(json.loads(json.dumps(_jsonable(new), default=str)) == old)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _jsonable(value: Any) -> Any:
    """Optuna stores user attributes as JSON; numpy scalars and NaN must not break that."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        json.dumps(value)
    except TypeError:
        if hasattr(value, "item"):
            return value.item()
        return str(value)
    return value
