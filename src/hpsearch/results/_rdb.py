"""A trial's writes to Optuna's RDB storage, in one transaction per event.

Optuna's storage API commits every parameter and every user attribute on its own: asking for a
trial of a ten-parameter space took 19 transactions (60 statements) and recording its ending 13
more (measured with SQLAlchemy's event counters, see ``tests/test_recorder.py``). On SQLite
that is time; on a PostgreSQL server across a network it is one round trip per row, and with
several drivers on one study, lock traffic. hpsearch therefore writes what one event of a trial
produces (its parameters and seed when asked, its values, attributes and state when it ends) in
one transaction, through Optuna's own table models.

This is the one place that knows Optuna's storage internals (``optuna.storages._rdb``): they
are pinned with Optuna itself (``optuna>=5.0,<5.1`` in pyproject.toml) and the Recorder's
tests read every write back through Optuna's public API. Storages that are not RDB (Optuna's
in-memory or journal storages) take the public, one-call-per-row path.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import TrialState


class ParamBuffer:
    """Stands in for the storage of one asked trial and keeps its parameters in memory.

    An Optuna ``Trial`` writes each suggested parameter through ``trial.storage``; with this
    buffer in its place the parameters are collected and written together by :func:`write`.
    Everything else is passed to the real storage.

    Args:
        storage: The trial's real storage (``trial.storage``).
    """

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self.params: dict[str, tuple[float, BaseDistribution]] = {}

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        """Keep the parameter for :func:`write` (Optuna's Trial keeps its own copy too)."""
        self.params[param_name] = (param_value_internal, distribution)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def rdb(storage: Any) -> optuna.storages.RDBStorage | None:
    """The RDB storage under ``storage`` (Optuna wraps it in a cache), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def count_trials(storage: Any, study_id: int) -> int:
    """How many trials the study holds (see :func:`count_states`)."""
    return sum(count_states(storage, study_id)[0].values())


def count_states(
    storage: Any, study_id: int, *, failed_with: tuple[str, Collection[str]] | None = None
) -> tuple[Counter[str], int]:
    """Trials per state name, counted by the database (RDB) without loading a trial.

    Optuna's storage counts by loading every trial (parameters, attributes, values): 70 ms at
    100 trials for ``get_n_trials``, and the running trials' rows on every ask for the budget
    and the queue. Storages that are not RDB still load them.

    Args:
        storage: An Optuna storage.
        study_id: The study's storage id.
        failed_with: A user attribute and values: also count the FAIL trials that have it
            with one of those values (second result; 0 when not given).
    """
    backend = rdb(storage)
    if backend is None:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        return Counter(t.state.name for t in trials), sum(
            t.state == TrialState.FAIL and t.user_attrs.get(failed_with[0]) in failed_with[1]
            for t in trials
            if failed_with is not None
        )
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial = models.TrialModel
    attr = models.TrialUserAttributeModel
    with _create_scoped_session(backend.scoped_session) as session:
        states = session.execute(
            sqlalchemy.select(trial.state, sqlalchemy.func.count(trial.trial_id))
            .where(trial.study_id == study_id)
            .group_by(trial.state)
        )
        counts = Counter({state.name: int(n) for state, n in states})
        if failed_with is None or not counts[TrialState.FAIL.name]:
            return counts, 0
        key, values = failed_with
        marked = session.execute(
            sqlalchemy.select(sqlalchemy.func.count(trial.trial_id))
            .join(attr, attr.trial_id == trial.trial_id)
            .where(
                trial.study_id == study_id,
                trial.state == TrialState.FAIL,
                attr.key == key,
                attr.value_json.in_([json.dumps(value) for value in values]),
            )
        ).scalar_one()
        return counts, int(marked)


def write(
    storage: Any,
    trial_id: int,
    *,
    params: Mapping[str, tuple[float, BaseDistribution]] | None = None,
    user_attrs: Mapping[str, Any] | None = None,
    system_attrs: Mapping[str, Any] | None = None,
    state: TrialState | None = None,
    values: Sequence[float] | None = None,
    intermediate: Mapping[int, float] | None = None,
    first_heartbeat: bool = False,
) -> None:
    """Write parameters, attributes, values and a new state of one trial at once.

    Args:
        storage: An Optuna storage (RDB: one transaction; others: one call per row).
        trial_id: The trial's storage id.
        params: Parameter name -> (internal value, distribution).
        user_attrs: JSON-serialisable user attributes (set or replaced).
        system_attrs: JSON-serialisable system attributes (set or replaced).
        state: A finished state to end the trial in, or None to leave it RUNNING.
        values: The objectives' values (COMPLETE only).
        intermediate: Epoch -> intermediate value (set or replaced).
        first_heartbeat: Record the new trial's first heartbeat (storage with heartbeats).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: The trial was already finished (another
            driver ended it); nothing is written.
    """
    params = params or {}
    user_attrs = user_attrs or {}
    system_attrs = system_attrs or {}
    intermediate = intermediate or {}
    backend = rdb(storage)
    if backend is None:
        for step, value in intermediate.items():
            storage.set_trial_intermediate_value(trial_id, step, value)
        for name, (value, distribution) in params.items():
            storage.set_trial_param(trial_id, name, value, distribution)
        for key, attr in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, attr)
        for key, attr in system_attrs.items():
            storage.set_trial_system_attr(trial_id, key, attr)
        if state is not None:
            storage.set_trial_state_values(trial_id, state, values)
        if first_heartbeat:
            storage.record_heartbeat(trial_id)
        return
    _write_rdb(
        backend,
        trial_id,
        params,
        user_attrs,
        system_attrs,
        state,
        values,
        intermediate,
        first_heartbeat,
    )


def _write_rdb(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    params: Mapping[str, tuple[float, BaseDistribution]],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
    state: TrialState | None,
    values: Sequence[float] | None,
    intermediate: Mapping[int, float],
    first_heartbeat: bool,
) -> None:
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        # Locks the row (FOR UPDATE where the database has it): two drivers ending the same
        # trial take turns, and the second finds it finished.
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        storage.check_trial_is_updatable(trial_id, trial.state)  # type: ignore[arg-type]
        # Parameters need no check against earlier trials' distributions (Optuna's storage
        # runs one query per parameter for it): the Recorder refuses a study whose stored
        # space differs from this one.
        if params:
            rows = [
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": value,
                    "distribution_json": distribution_to_json(distribution),
                }
                for name, (value, distribution) in params.items()
            ]
            session.execute(sqlalchemy.insert(models.TrialParamModel), rows)
        for model, attrs in (
            (models.TrialUserAttributeModel, user_attrs),
            (models.TrialSystemAttributeModel, system_attrs),
        ):
            if attrs:
                _upsert_attrs(storage, session, model, trial_id, attrs)
        if values:
            rows = []
            for objective, value in enumerate(values):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows.append(
                    {
                        "trial_id": trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": kind,
                    }
                )
            session.execute(sqlalchemy.insert(models.TrialValueModel), rows)
        if intermediate:
            _upsert_intermediate(session, trial_id, intermediate)
        if first_heartbeat:
            session.add(
                models.TrialHeartbeatModel(
                    trial_id=trial_id, heartbeat=sqlalchemy.func.current_timestamp()
                )
            )
        if state is not None:
            trial.state = state
            if state.is_finished():
                trial.datetime_complete = datetime.now()


def _upsert_intermediate(session: Any, trial_id: int, values: Mapping[int, float]) -> None:
    """Set epoch -> value rows: one read of the steps stored already, one insert for the rest."""
    import sqlalchemy
    from optuna.storages._rdb import models

    table = models.TrialIntermediateValueModel
    stored = {
        row.step: row
        for row in session.scalars(
            sqlalchemy.select(table).where(table.trial_id == trial_id, table.step.in_(list(values)))
        )
    }
    rows = []
    for step, value in values.items():
        number, kind = table.intermediate_value_to_stored_repr(value)
        if step in stored:
            stored[step].intermediate_value = number
            stored[step].intermediate_value_type = kind
        else:
            rows.append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "intermediate_value": number,
                    "intermediate_value_type": kind,
                }
            )
    if rows:
        session.execute(sqlalchemy.insert(table), rows)


def _upsert_attrs(
    storage: optuna.storages.RDBStorage,
    session: Any,
    model: Any,
    trial_id: int,
    attrs: Mapping[str, Any],
) -> None:
    """Set or replace many attributes of a trial in one statement (SQLite, PostgreSQL)."""
    rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    dialect = storage.engine.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        statement = insert(model)
        # The rows go as parameters, not inside the statement: one SQL text per table, which
        # SQLAlchemy compiles once and caches (compiling the rows in cost 0.8 ms per call).
        session.connection().execute(
            statement.on_conflict_do_update(
                index_elements=[model.trial_id, model.key],
                set_={"value_json": statement.excluded.value_json},
            ),
            rows,
        )
        return
    for key, value in attrs.items():  # MySQL and others: Optuna's own upsert, row by row
        storage._set_trial_attr_without_commit(session, model, trial_id, key, value)


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str) -> Iterator[None]:
    """Hold a lock on ``study_name`` that every driver of the study takes the same way.

    Two drivers on one study share its trial budget: each checks what is stored, then asks for
    a trial. Without a lock around the two, both can take the last place (measured: 41 trials
    for a 40-trial budget in one run of ``tests/test_postgres.py`` out of five). Optuna's trial
    creation runs in a transaction of its own, so the lock cannot be a row lock; it is a
    PostgreSQL advisory lock, or for SQLite an exclusive ``flock`` on a file beside the
    database. Other databases (MySQL) take no lock; the budget may then be overshot by a trial
    when drivers finish together.
    """
    backend = rdb(storage)
    if backend is None:
        yield
        return
    key = zlib.crc32(f"hpsearch:{study_name}".encode())
    url = backend.engine.url
    if backend.engine.name == "postgresql":
        import sqlalchemy

        with backend.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    if backend.engine.name == "sqlite" and url.database not in (None, "", ":memory:"):
        import fcntl

        lock_path = Path(f"{url.database}.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    yield
