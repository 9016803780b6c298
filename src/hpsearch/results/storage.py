"""Open an existing storage and study, read-only: never create a file, a table or a study.

``hpsearch run`` opens storage with :func:`hpsearch.recorder.open_storage`, which creates a
SQLite file (and its folder) when it is missing, as a new search should. A command that only
reads (``report``, ``dashboard``, ``export``, ``ls``, ``show``) must not: a mistyped path would
silently leave an empty database behind and then report "no study", hiding the typo. So here a
missing SQLite file is an error that lists the databases that do exist beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import InputError

if TYPE_CHECKING:
    import optuna

    from hpsearch.spec import Study

__all__ = [
    "HISTORY_KEY",
    "StudyRef",
    "kept_model",
    "load_existing_study",
    "mask_url",
    "model_path",
    "open_existing_storage",
    "open_study",
    "resolve_study",
    "scrub_password",
    "study_names",
    "trial_history",
]

#: Trial system attribute holding the per-epoch reports. A system attribute, not a user one:
#: ``optuna trials`` and optuna-dashboard print every user attribute in a trial's row, and a
#: history made each row thousands of characters wide. Readers go through
#: :func:`trial_history`.
HISTORY_KEY = "hpsearch:history"

_EXAMPLE = "sqlite:///results/hpsearch.db"


def model_path(models_dir: str | Path, number: int) -> Path:
    """Where trial ``number``'s model is kept (study setting ``keep_models``)."""
    return Path(models_dir) / f"trial_{number:05d}.keras"


def kept_model(attrs: Mapping[str, Any], number: int) -> Path | None:
    """Trial ``number``'s kept model, if the study keeps models and this one still exists.

    Args:
        attrs: The study's user attributes (``models``: the folder and the setting, stored by
            the Recorder).
        number: The trial.
    """
    models = attrs.get("models")
    if not isinstance(models, Mapping) or not models.get("dir"):
        return None
    path = model_path(str(models["dir"]), number)
    return path if path.is_file() else None


def trial_history(trial: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """A stored trial's per-epoch reports, oldest first (empty when it reported none).

    Studies recorded by earlier versions of hpsearch kept them in the ``history`` user
    attribute; those are read as well.
    """
    history = trial.system_attrs.get(HISTORY_KEY, trial.user_attrs.get("history"))
    return [dict(row) for row in history] if isinstance(history, list) else []


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and written files.

    A URL SQLAlchemy cannot parse is returned with everything between ``//`` and ``@``
    masked, so a password is never shown whatever the URL looks like.
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        head, sep, rest = url.partition("://")
        if sep and "@" in rest:
            return f"{head}://***@{rest.rsplit('@', 1)[1]}"
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def scrub_password(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (if any) replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, None for other schemes and in-memory databases."""
    if not url.startswith("sqlite:"):
        return None
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    path = path.split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def _databases_near(path: Path) -> str:
    """A sentence naming the ``.db`` files in ``path``'s folder (or saying there are none)."""
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    found = sorted(p.name for p in folder.glob("*.db"))
    if not found:
        return f"there is no .db file in {folder}"
    return f".db files in {folder}: {', '.join(found)}"


def open_existing_storage(
    url: str, *, source: str | Path = "--storage"
) -> optuna.storages.RDBStorage:
    """Open an Optuna RDB storage that must exist already; create nothing.

    A SQLite URL whose file is missing is refused with the databases found in that folder;
    a URL of another scheme (PostgreSQL, MySQL) is opened as it is. Optuna's tables are never
    created (``skip_table_creation``): a file that is not an Optuna storage is refused.

    Args:
        url: An SQLAlchemy URL.
        source: Where the URL came from (a study file or ``--storage``), for messages.

    Raises:
        InputError: The SQLite file does not exist or holds no Optuna study tables, or the
            URL cannot be opened.
    """
    import optuna

    path = _sqlite_path(url)
    shown = mask_url(url)
    if path is not None and not path.is_file():
        raise InputError(
            source,
            "storage",
            f"no storage at {shown} (file {path.resolve()} does not exist; "
            f"{_databases_near(path.resolve())})",
            f"give the URL of an existing storage, e.g. --storage {_EXAMPLE}; paths are "
            "relative to the directory hpsearch runs in",
        )
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    try:
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, skip_table_creation=True
        )
        storage.get_all_studies()
    except Exception as exc:
        raise InputError(
            source,
            "storage",
            f"cannot read an Optuna storage at {shown}: {type(exc).__name__}: "
            f"{scrub_password(str(exc).splitlines()[0] if str(exc) else '', url)}",
            "give the URL of a storage `hpsearch run` wrote, and check the server is up",
        ) from exc
    return storage


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies())


def load_existing_study(
    name: str, storage: optuna.storages.BaseStorage, *, url: str, source: str | Path = "STUDY"
) -> optuna.Study:
    """Load study ``name``; refuse a name the storage does not hold, listing those it does.

    Raises:
        InputError: No study of that name in the storage.
    """
    import optuna

    names = study_names(storage)
    if name not in names:
        listed = ", ".join(names) if names else "none"
        raise InputError(
            source,
            "name",
            f"no study {name!r} in {mask_url(url)} (studies there: {listed})",
            "give one of the names listed (`hpsearch ls --storage URL`), or run the study first",
        )
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyRef:
    """What a command's STUDY argument names: a study in a storage, maybe through its file.

    Attributes:
        name: The study's name in storage.
        url: The storage URL (unmasked: it is used to connect; print :func:`mask_url` of it).
        study: The validated study file, when STUDY was one; None for a bare name.
        source: What to name in messages (the study file, or ``STUDY``).
    """

    name: str
    url: str
    study: Study | None
    source: str


def resolve_study(arg: str, storage: str | None = None) -> StudyRef:
    """Read a STUDY argument: a study file (``.yaml``/``.yml`` or an existing file) or a name.

    A study file gives its name and storage (``--storage`` overrides it); a bare name is
    looked up in ``--storage``, or in the default storage.

    Raises:
        InputError: The study file is invalid.
    """
    from hpsearch.spec import DEFAULT_STORAGE, load_study

    path = Path(arg)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        study = load_study(path, storage=storage)
        return StudyRef(study.spec.name, study.spec.storage, study, str(path))
    return StudyRef(arg, storage or DEFAULT_STORAGE, None, "STUDY")


def open_study(ref: StudyRef) -> optuna.Study:
    """The stored study ``ref`` names, opened read-only (see :func:`open_existing_storage`)."""
    source = (
        ref.source if ref.study is not None and ref.study.spec.storage == ref.url else "--storage"
    )
    storage = open_existing_storage(ref.url, source=source)
    return load_existing_study(ref.name, storage, url=ref.url, source=ref.source)
