"""Turn pydantic's validation errors into :class:`~hpsearch.errors.InputError`.

Pydantic knows *where* a value is wrong (its ``loc``) but not which file it came from, nor what
a physicist should type instead. This module adds both, so every message names the file, the
dotted key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from hpsearch.errors import InputError


def dotted(loc: Sequence[str | int]) -> str:
    """``("budget", "trials")`` -> ``"budget.trials"``; list indices stay numeric."""
    return ".".join(str(part) for part in loc)


class Invalid(ValueError):
    """A validator's refusal that knows its fix: ``raise Invalid(problem, fix)``.

    Pydantic keeps the exception a validator raised (in the error's ``ctx``), so the fix
    written beside the check reaches the message instead of a generic "correct the value".
    A check of a whole model (two fields that contradict each other) is located at the
    model; ``key`` names the field the user should look at.

    Args:
        problem: What is wrong, with the values given.
        fix: What to write instead.
        key: The dotted key, below the validated model, that the message should name.
    """

    def __init__(self, problem: str, fix: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.fix = fix
        self.key = key


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names allowed at ``loc[:-1]`` inside ``model``, for 'unknown key' fixes.

    ``loc`` is pydantic's, with the tags of tagged unions in it (``data.split.fractions``):
    a tag picks the union's member, so an unknown key under ``data.split`` lists the keys of
    the kind of split written, not those of the union's first member.
    """
    current: Any = model
    annotation: Any = None
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is not None and part in fields:
            annotation = fields[part].annotation
            current = _model_in(annotation)
        else:
            current = _model_in(annotation, tag=str(part))
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields is not None else None


def _model_in(annotation: Any, tag: str | None = None) -> type[BaseModel] | None:
    """The model inside ``annotation`` (the union member tagged ``tag``, when given)."""
    if tag is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = get_args(annotation)
    if tag is not None and any(getattr(meta, "tag", None) == tag for meta in args[1:]):
        return _model_in(args[0])
    for arg in args:
        found = _model_in(arg, tag)
        if found is not None:
            return found
    return None


#: What to write instead of a value of the wrong type, by the start of pydantic's error type.
_TYPE_FIXES = {
    "int_": "write a whole number, e.g. `4`",
    "float_": "write a number, e.g. `0.5`",
    "bool_": "write true or false",
    "string_": "write a text (quote it if YAML would read it as something else)",
    "list_": "write a list: `[a, b]`, or one `- item` line each",
    "dict_": "write a mapping: `key: value` lines indented under the key",
    "model_": "write a mapping: `key: value` lines indented under the key",
    "path_": "write a file path",
}
#: The patterns of names in study files, in words.
_PATTERNS = {
    r"^[A-Za-z0-9_.-]+$": "use only letters, digits, `_`, `.` and `-` (no spaces or slashes)",
    r"^[A-Za-z0-9_]+$": "use only letters, digits and `_`",
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _fix_for(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    kind = error["type"]
    loc = error["loc"]
    ctx = error.get("ctx", {})
    if isinstance(ctx.get("error"), Invalid):
        return str(ctx["error"].fix)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc) if model is not None else None
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"remove or rename `{loc[-1]}`{hint}"
    if kind == "missing":
        return f"add `{loc[-1]}`"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERNS.get(pattern, f"write a value that matches the pattern {pattern}")
    if kind == "too_short":
        return f"give at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"give at most {ctx.get('max_length')} item(s)"
    for prefix, fix in _TYPE_FIXES.items():
        if kind.startswith(prefix):
            return fix
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return f"use one of {expected}"
    bound = next((f"{op} {ctx[name]}" for name, op in _BOUNDS.items() if name in ctx), None)
    if bound is not None:
        return f"give a value {bound}"
    return "correct the value as the message says"


#: Longest shown input of a refused value; a whole mapping would bury the message.
_MAX_SHOWN = 80


#: Tags of the tagged unions in study files (``data.split`` is one of four kinds): pydantic puts
#: the tag into an error's location, where the user never wrote it.
_UNION_TAGS = {"split": frozenset({"fractions", "labels", "indices", "files"})}


#: Labels pydantic gives the members of a plain union (``float | Literal["auto"]``) in an
#: error's location; no key of a study or space file is named so.
_SCALAR_MEMBERS = frozenset({"float", "int", "str", "bool", "bytes", "none"})


def _without_member_labels(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """``resources.gpus_per_trial.float`` -> ``resources.gpus_per_trial``: the user's keys.

    Members of a plain union are labelled by their type (``float``, ``literal['auto']``,
    ``list[...]``, or a validator's description for a path); the label is no key of the file.
    """
    return tuple(
        part
        for part in loc
        if not isinstance(part, str) or ("[" not in part and part not in _SCALAR_MEMBERS)
    )


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
    errors: list[dict[str, Any]] = [
        {**e, "loc": _without_member_labels(e["loc"])} for e in exc.errors()
    ]
    # An unknown key is usually a typo, and the cause of a "missing" error beside it: name it first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # A value of a union (`gpus_per_trial: 0.5 | auto`) fails once per member: one problem.
    alike = [e for e in errors if e["loc"] == error["loc"]]
    loc = _without_union_tags([*prefix, *error["loc"]])
    raised = error.get("ctx", {}).get("error")
    if isinstance(raised, Invalid) and raised.key:
        loc = [*loc, *raised.key.split(".")]
    key = dotted(loc)
    origin = str(source)
    for set_key, set_origin in (sources or {}).items():
        if key == set_key or key.startswith(set_key + "."):
            origin = set_origin
    given = repr(error.get("input"))
    if len(given) > _MAX_SHOWN:
        given = given[:_MAX_SHOWN] + " ..."
    # A validator's own message quotes the values it refuses; pydantic's do not.
    quoted = error["type"] in ("missing", "value_error", "assertion_error")
    shown = "" if quoted else f" (got {given})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    more = len({tuple(e["loc"]) for e in errors}) - 1
    also = f"; {more} more problem(s) after this one" if more else ""
    fix = "; or ".join(dict.fromkeys(_fix_for(e, model) for e in alike))
    return InputError(origin, key, f"{message}{shown}{also}", fix)
