"""A corpus of malformed inputs, each refused alike: exit 2, one short message, storage untouched.

The cases are data, in ``tests/bad_input/*.yaml`` (one file per kind of mistake; the format is
in ``tests/bad_input/README.md``). Each case is the same tiny working study (the synthetic
objective on the session's simulated xgamma file) plus one change: keys patched into the study,
a raw text for a syntax error, a broken space, data or objective file, or a command-line
argument. For every case ``hpsearch run`` (or ``validate``) must:

* exit with 2, before Ray starts (``run_study`` is replaced by a tripwire);
* print one short message naming the file, the key and the fix, and no traceback;
* leave an existing storage (a SQLite file already holding a finished study of three trials)
  byte for byte as it was.

The storage is opened in write-ahead-log mode, where a write lands in ``NAME.db-wal`` until a
checkpoint copies it into the file; so the check compares the file's bytes *and* requires the
log to be absent or empty. The tests at the end show that the check does see a real write,
both while the writer still holds the file and after it closed it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from h5files import write as write_h5
from hpsearch.cli import main

CORPUS = Path(__file__).parent / "bad_input"
#: The storage every case's study names, relative to the scratch project.
STORAGE = "results/corpus.db"
#: The finished study that storage holds; clash cases take its name.
STORED_NAME = "stored"
#: One short message: the problem on one line, the fix on the next, this many characters.
MAX_LINES = 2
MAX_CHARS = 600


class ReachedRay(Exception):
    """Raised in place of ``run_study``: the case got past every check to the Ray run."""


@dataclass(frozen=True)
class Case:
    """One malformed input and what its refusal must say (see tests/bad_input/README.md)."""

    id: str
    category: str
    about: str
    expect: dict[str, str]
    command: str = "run"
    study: dict[str, Any] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    study_raw: str | None = None
    space: dict[str, Any] = field(default_factory=dict)
    space_raw: str | None = None
    data_file: dict[str, Any] | list[dict[str, Any]] | None = None
    objective: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    xfail: str | None = None


def load_corpus() -> list[Case]:
    """Every case of every corpus file, in file order."""
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case_id, body in raw.items():
            cases.append(Case(id=case_id, category=path.stem, **body))
    return cases


CASES = load_corpus()


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
    return pytest.param(case, id=f"{case.category}-{case.id}", marks=marks)


# -- the storage -----------------------------------------------------------------------------


def storage_state(db: Path) -> tuple[str, int]:
    """The database file's SHA-256 and the size of its write-ahead log (0 when absent).

    A write committed by a connection that is still open sits in the log, not in the file;
    after the last connection closes SQLite copies it into the file and deletes the log. A
    run that opened the storage without writing leaves at most an empty log.
    """
    wal = db.with_name(db.name + "-wal")
    return hashlib.sha256(db.read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else 0


@pytest.fixture(scope="session")
def _stored_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Where the session's finished storage is kept once the first test has made it."""
    return {"folder": tmp_path_factory.mktemp("stored")}


def _make_stored(study_file: Path, db: Path) -> None:
    """A storage holding study ``stored`` as ``hpsearch run`` leaves it: three ended trials."""
    from rich.console import Console

    from hpsearch.lifecycle import decide
    from hpsearch.prepare import prepare
    from hpsearch.recorder import Recorder, open_storage
    from hpsearch.spec import load_study

    url = f"sqlite:///{db}"
    study = load_study(study_file, [f"name={STORED_NAME}"], storage=url)
    prepared = prepare(study, Console(stderr=True, quiet=True))
    storage = open_storage(url, heartbeat_seconds=study.spec.resume.heartbeat_seconds)
    recorder = Recorder(
        prepared.study,
        storage,
        input_stats=prepared.input_stats,
        provenance=prepared.provenance(),
    )
    metrics = [o.metric for o in study.spec.objectives]
    epochs = study.spec.budget.epochs
    full = {"val_accuracy": 0.8, "train_seconds": 2.0, "test_accuracy": 0.79, "complete": True}
    endings = [
        decide({"epoch": epochs, **full}, objectives=metrics, epochs=epochs),
        decide(
            {"epoch": 1, "val_accuracy": 0.3},
            objectives=metrics,
            epochs=epochs,
            scheduler_stopped=True,
        ),
        decide(None, objectives=metrics, epochs=epochs, error="ValueError: synthetic failure"),
    ]
    for outcome in endings:
        ticket = recorder.ask()
        recorder.record_epoch(ticket.number, {"epoch": 1, "val_accuracy": 0.3})
        recorder.finish(ticket.number, outcome, [])
    storage.engine.dispose()  # the last connection closes: the log is copied in and deleted


@pytest.fixture
def base_study(synthetic_study: Callable[..., Path]) -> Path:
    """The working study every case changes, written as ``studies/synthetic.yaml``."""
    return synthetic_study(name="corpus", storage=f"sqlite:///{STORAGE}", data__simulate=None)


@pytest.fixture
def storage(project: Path, base_study: Path, _stored_cache: dict[str, Path]) -> Path:
    """A copy of the session's storage with a finished study, where the base study points."""
    stored = _stored_cache.get("db")
    if stored is None:
        stored = _stored_cache["folder"] / "stored.db"
        _make_stored(base_study, stored)
        assert storage_state(stored)[1] == 0, "the made storage left a write-ahead log"
        _stored_cache["db"] = stored
    db = project / STORAGE
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(stored, db)
    return db


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the Ray run by a tripwire: a case that reaches it was not refused in time."""

    def tripwire(*args: Any, **kwargs: Any) -> Any:
        raise ReachedRay("the study passed every check and reached the Ray run")

    monkeypatch.setattr("hpsearch.runner.run_study", tripwire)


# -- writing a case --------------------------------------------------------------------------


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` on top of ``base``: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _delete(raw: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    target: Any = raw
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[last]


def make_data_file(path: Path, spec: dict[str, Any]) -> Path:
    """A broken data file as a case describes it (see tests/bad_input/README.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if "text" in spec:
        path.write_text(spec["text"])
        return path
    if spec.get("directory"):
        path.mkdir()
        return path
    n = int(spec.get("n", 300))
    x_shape = [n if d == "n" else int(d) for d in spec.get("x_shape", ["n", 8])]
    x = np.random.default_rng(0).normal(size=x_shape).astype(spec.get("x_dtype", "float32"))
    for event, value in spec.get("x_values", {}).items():
        x[int(event)] = float(value)
    labels = spec.get("labels", [0, 1, 2])
    y = np.resize(np.asarray(labels), spec.get("y_shape", [len(x)]))
    y = y.astype(spec.get("y_dtype", "int8"))
    attrs = {
        key: json.dumps(value) if isinstance(value, list) else value
        for key, value in spec.get("attrs", {}).items()
    }
    write_h5(path, x=x, y=y, attrs=attrs)
    if "keep_bytes" in spec:
        data = path.read_bytes()
        keep = spec["keep_bytes"]
        path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return path


def write_case(case: Case, project: Path, study_path: Path) -> dict[str, str]:
    """Write the case's files into the project; return the names its ``expect`` may use."""
    raw = yaml.safe_load(study_path.read_text())
    names = {"study": str(study_path.relative_to(project))}
    for relative, text in case.files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    if case.data_file is not None:
        specs = case.data_file if isinstance(case.data_file, list) else [case.data_file]
        paths = []
        for index, spec in enumerate(specs):
            relative = spec.get("path", f"data/case{index}.h5")
            if not spec.get("missing"):
                make_data_file(project / relative, spec)
            paths.append(relative)
        raw["data"]["path"] = paths[0] if len(paths) == 1 else paths
        names["data"] = str((project / paths[0]).resolve())
    for dotted in case.delete:
        _delete(raw, dotted)
    raw = _merge(raw, case.study)
    space_path = project / raw.get("space", "search_spaces/synthetic.yaml")
    names["space"] = str(raw.get("space", ""))
    if case.space_raw is not None:
        space_path.write_text(case.space_raw)
    elif case.space:
        space = _merge(yaml.safe_load(space_path.read_text()), case.space)
        space_path.write_text(yaml.safe_dump(space))
    objective = project / "objectives" / "synthetic.py"
    names["objective"] = str(objective.resolve())
    if case.objective is not None:
        objective.write_text(case.objective)
    study_path.write_text(case.study_raw if case.study_raw is not None else yaml.safe_dump(raw))
    return names


# -- the corpus ------------------------------------------------------------------------------


def project_files(project: Path) -> set[str]:
    """Every file in the project, but the storage's own log files and Python's byte code."""
    return {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(("-wal", "-shm"))
    }


def error_part(text: str) -> str:
    """The refusal: stderr from its ``error:`` line on (progress lines may come before it)."""
    start = text.find("error:")
    return text[start:].strip() if start >= 0 else ""


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_a_malformed_input_is_refused_before_anything_runs(
    case: Case,
    project: Path,
    base_study: Path,
    storage: Path,
    no_ray: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = write_case(case, project, base_study)
    before = storage_state(storage)
    assert before[1] == 0
    files = project_files(project)

    code = main([case.command, names["study"], *case.args])

    out, err = capsys.readouterr()
    message = error_part(err)
    shown = f"{case.about}: exit {code}; stderr:\n{err}\nstdout:\n{out}"
    assert code == 2, shown
    assert "Traceback" not in out + err, shown
    assert message, shown
    lines = message.splitlines()
    assert len(lines) <= MAX_LINES and len(message) <= MAX_CHARS, f"not short:\n{message}"
    source = names.get(case.expect["source"], case.expect["source"])
    assert source in lines[0], f"the message does not name {source!r}:\n{message}"
    assert case.expect["key"] in lines[0], f"the message does not name the key:\n{message}"
    fix = message.partition("fix:")[2]
    assert case.expect["fix"] in fix, f"the fix does not say {case.expect['fix']!r}:\n{message}"
    for text in case.absent:
        assert text not in out + err, f"{text!r} is shown:\n{message}"
    assert storage_state(storage) == before, "the storage changed"
    assert project_files(project) <= files, "the run left new files behind"


def test_the_corpus_covers_every_kind_of_mistake() -> None:
    ids = [(case.category, case.id) for case in CASES]
    assert len(set(ids)) == len(ids)
    assert len(CASES) >= 40
    categories = {case.category for case in CASES}
    assert {
        "yaml_syntax",
        "unknown_keys",
        "wrong_types",
        "missing_keys",
        "ranges",
        "unknown_names",
        "contradictions",
        "data_files",
        "storage",
        "name_clash",
        "command_line",
        "objective_file",
    } <= categories
    for case in CASES:
        assert set(case.expect) == {"source", "key", "fix"}, case.id
        assert case.command in ("run", "validate"), case.id


# -- the checks themselves -------------------------------------------------------------------


def test_the_base_study_is_valid(base_study: Path, storage: Path) -> None:
    """Each case's refusal is its change's doing: without a change the study validates."""
    assert main(["validate", str(base_study)]) == 0


def test_the_base_study_reaches_ray_and_its_write_is_seen(
    base_study: Path, storage: Path, no_ray: None
) -> None:
    """Unchanged, ``run`` passes every check, creates its study, and the check sees that.

    The storage is still open here (the run was cut at the Ray run): the new study sits in
    the write-ahead log, and the check must see it there.
    """
    before = storage_state(storage)
    with pytest.raises(ReachedRay):
        main(["run", str(base_study)])
    assert storage_state(storage) != before


def test_a_closed_write_is_seen_too(base_study: Path, storage: Path) -> None:
    """A write whose connection closed is in the file itself: the hash changes."""
    from hpsearch.recorder import open_storage

    before = storage_state(storage)
    opened = open_storage(f"sqlite:///{storage}")
    study_id = opened.get_study_id_from_name(STORED_NAME)
    opened.set_study_user_attr(study_id, "touched", True)
    opened.engine.dispose()
    after = storage_state(storage)
    assert after[1] == 0
    assert after != before


def test_an_open_read_leaves_the_storage_as_it_was(base_study: Path, storage: Path) -> None:
    """Opening the stored study and reading it writes nothing (else every clash case would)."""
    import optuna

    from hpsearch.recorder import open_storage

    before = storage_state(storage)
    opened = open_storage(f"sqlite:///{storage}", heartbeat_seconds=10)
    assert len(optuna.load_study(study_name=STORED_NAME, storage=opened).trials) == 3
    assert storage_state(storage) == before
    opened.engine.dispose()
    assert storage_state(storage) == before


def test_debug_shows_the_traceback(
    base_study: Path, storage: Path, no_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(base_study), "--set", "budget.trials=many"]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "InputError" in err
    assert "budget.trials" in error_part(err) and "fix:" in err


def test_a_good_enqueue_file_and_address_still_pass_the_early_checks(
    project: Path, base_study: Path, storage: Path, no_ray: None
) -> None:
    """The checks moved before storage refuse only what is wrong.

    A listening address and a valid enqueue file get through, and the configuration is
    queued as it was before the checks moved.
    """
    import socket

    import optuna

    queue = project / "studies" / "first.yaml"
    queue.write_text("mine: {x: 0.25}\n")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(ReachedRay):
            main(["run", str(base_study), "--enqueue", str(queue), "--address", address])
    study = optuna.load_study(study_name="corpus", storage=f"sqlite:///{storage}")
    [waiting] = study.get_trials()
    assert waiting.state == optuna.trial.TrialState.WAITING
    assert waiting.user_attrs["enqueued_as"] == "mine"
    assert waiting.system_attrs["fixed_params"] == {"x": 0.25}
