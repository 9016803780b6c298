"""Turn pydantic's validation errors into :class:`~hpsearch.errors.InputError`.

Pydantic knows *where* a value is wrong (its ``loc``) but not which file it came from, nor what
a physicist should type instead. This module adds both, so every message names the file, the
dotted key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hpsearch.errors import InputError


def dotted(loc: Sequence[str | int]) -> str:
    """``("budget", "trials")`` -> ``"budget.trials"``; list indices stay numeric."""
    return ".".join(str(part) for part in loc)


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names allowed at ``loc[:-1]`` inside ``model``, for 'unknown key' fixes."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields is not None else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fix_for(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc) if model is not None else None
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"remove or rename `{loc[-1]}`{hint}"
    if kind == "missing":
        return f"add `{loc[-1]}`"
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_", "dict_", "model_")):
        return "give a value of the type the message names"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"use one of {expected}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "change the value so that the bound in the message holds"
    return "correct the value as the message says"


#: Tags of the tagged unions in study files (``data.split`` is one of four kinds): pydantic puts
#: the tag into an error's location, where the user never wrote it.
_UNION_TAGS = {"split": frozenset({"fractions", "labels", "indices", "files"})}


def _without_union_tags(loc: list[str | int]) -> list[str | int]:
    """``data.split.fractions.train`` -> ``data.split.train``: the keys as the file has them."""
    for i in range(1, len(loc)):
        parent, part = loc[i - 1], loc[i]
        if isinstance(parent, str) and part in _UNION_TAGS.get(parent, ()):
            return [*loc[:i], *loc[i + 1 :]]
    return loc


def raise_input_error(
    exc: ValidationError,
    source: str | Path,
    *,
    prefix: Sequence[str | int] = (),
    model: type[BaseModel] | None = None,
    sources: Mapping[str, str] | None = None,
) -> InputError:
    """Convert the first error of ``exc`` into an :class:`InputError` and return it.

    Args:
        exc: Pydantic's error.
        source: File the validated document came from.
        prefix: Key path of the validated sub-document inside that file.
        model: The model validated, used to list allowed keys for unknown ones.
        sources: Dotted keys that came from elsewhere (``--set``), mapped to that origin.

    Returns:
        The error to raise (``raise raise_input_error(...) from exc``), so call sites read as
        raising.
    """
    errors = exc.errors()
    # An unknown key is usually a typo, and the cause of a "missing" error beside it: name it first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _without_union_tags([*prefix, *error["loc"]])
    key = dotted(loc)
    origin = str(source)
    for set_key, set_origin in (sources or {}).items():
        if key == set_key or key.startswith(set_key + "."):
            origin = set_origin
    given = error.get("input")
    shown = "" if error["type"] == "missing" else f" (got {given!r})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    more = len(errors) - 1
    also = f"; {more} more problem(s) after this one" if more else ""
    return InputError(origin, key, f"{message}{shown}{also}", _fix_for(error, model))
