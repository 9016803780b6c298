"""Search spaces: what a trial's parameters may be, declared in ``search_spaces/*.yaml``.

A space file is a tree. A mapping with a ``type`` key is a parameter (``float``, ``int`` or
``categorical``); any other mapping is a group whose keys nest, and a plain scalar is a constant.
Every searcher sees the same tree and decodes to the same nested dict, so an objective never
knows which library chose its parameters::

    family: resnet1d
    params:
      blocks: {type: int, low: 1, high: 5}
      optimizer:
        name: adam                                   # constant
        learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}

Dotted names (``optimizer.learning_rate``) identify parameters in storage and on the command
line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hpsearch.errors import InputError
from hpsearch.spec._errors import raise_input_error

Scalar = str | int | float | bool | None


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatParam(_Param):
    """A real-valued parameter, uniform or log-uniform on ``[low, high]``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.low > self.high:
            raise ValueError(
                f"empty range: `low <= high` must hold, but low={self.low}, high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs `low > 0`, but low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log: true` cannot be combined")
        return self


class IntParam(_Param):
    """An integer parameter on ``[low, high]`` (both ends included)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.low > self.high:
            raise ValueError(
                f"empty range: `low <= high` must hold, but low={self.low}, high={self.high}"
            )
        if self.log and self.low < 1:
            raise ValueError(f"a log-scaled integer range needs `low >= 1`, but low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("`step` and `log: true` cannot be combined")
        return self


class CategoricalParam(_Param):
    """One of a list of choices: numbers, strings or booleans."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        seen = [json.dumps(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices must be distinct, but got {self.choices}")
        return self


Param = FloatParam | IntParam | CategoricalParam
_BY_TYPE: dict[str, type[Param]] = {
    "float": FloatParam,
    "int": IntParam,
    "categorical": CategoricalParam,
}
_LEAVES = (FloatParam, IntParam, CategoricalParam)

Node = Param | Scalar | dict[str, "Node"]


class _SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str | None = None
    description: str | None = None
    params: dict[str, Any] = Field(min_length=1)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    Attributes:
        source: The file it was read from.
        family: The model family this space builds (e.g. ``resnet1d``), if fixed.
        tree: Nested mapping of names to parameters, constants and groups.
    """

    source: Path
    family: str | None
    tree: dict[str, Node] = field(repr=False)

    def params(self) -> dict[str, FloatParam | IntParam | CategoricalParam]:
        """The searched parameters by dotted name, in file order."""
        return {name: node for name, node in _walk(self.tree) if isinstance(node, _LEAVES)}

    def constants(self) -> dict[str, Scalar]:
        """The fixed values by dotted name."""
        return {name: node for name, node in _walk(self.tree) if not isinstance(node, _LEAVES)}

    def decode(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Nest dotted ``flat`` values, filling in constants: what an objective receives."""
        values = {**self.constants(), **flat}
        nested: dict[str, Any] = {}
        for name, value in values.items():
            *groups, leaf = name.split(".")
            target = nested
            for group in groups:
                target = target.setdefault(group, {})
            target[leaf] = value
        return nested

    def fingerprint(self) -> str:
        """A short hash of the space, stored with a study to refuse mixing spaces in one."""
        canonical = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for provenance in storage."""
        return {"family": self.family, "params": _dump(self.tree)}


def _walk(tree: Mapping[str, Node], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node, dict):
            yield from _walk(node, name + ".")
        else:
            yield name, node


def _dump(tree: Mapping[str, Node]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, node in tree.items():
        if isinstance(node, dict):
            out[key] = _dump(node)
        elif isinstance(node, _Param):
            out[key] = node.model_dump(exclude_defaults=True) | {"type": node.type}
        else:
            out[key] = node
    return out


def _parse_tree(raw: Mapping[str, Any], source: Path, prefix: tuple[str, ...]) -> dict[str, Node]:
    tree: dict[str, Node] = {}
    for key, value in raw.items():
        loc = (*prefix, str(key))
        if not isinstance(key, str) or not key.isidentifier():
            raise InputError(
                source,
                ".".join(loc),
                f"parameter name {key!r} is not a valid name",
                "use letters, digits and underscores, not starting with a digit",
            )
        if isinstance(value, Mapping) and "type" in value:
            kind = _BY_TYPE.get(str(value["type"]))
            if kind is None:
                raise InputError(
                    source,
                    ".".join((*loc, "type")),
                    f"unknown parameter type {value['type']!r}",
                    f"use one of {', '.join(_BY_TYPE)}",
                )
            try:
                tree[key] = kind.model_validate(dict(value))
            except ValidationError as exc:
                raise raise_input_error(exc, source, prefix=loc, model=kind) from exc
        elif isinstance(value, Mapping):
            if not value:
                raise InputError(
                    source, ".".join(loc), "empty group", "add parameters to the group or remove it"
                )
            tree[key] = _parse_tree(value, source, loc)
        elif isinstance(value, list):
            raise InputError(
                source,
                ".".join(loc),
                f"a bare list {value!r} is ambiguous",
                "write `{type: categorical, choices: [...]}` to search over it",
            )
        else:
            tree[key] = value
    return tree


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space file.

    Raises:
        InputError: The file is missing, is not YAML, or declares an invalid parameter.
    """
    source = Path(path)
    raw = read_yaml_mapping(source, what="search space")
    try:
        document = _SpaceFile.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, source, model=_SpaceFile) from exc
    tree = _parse_tree(document.params, source, ("params",))
    space = SearchSpace(source=source, family=document.family, tree=tree)
    if not space.params():
        raise InputError(
            source,
            "params",
            "declares no searched parameter, only constants",
            "give at least one parameter a `type: float|int|categorical`",
        )
    return space


def read_yaml_mapping(source: Path, *, what: str) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping, with errors naming the file."""
    if not source.is_file():
        raise InputError(
            source,
            "",
            f"{what} file not found (looked at {source.resolve()})",
            "check the path; relative paths are taken from the current directory",
        )
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise InputError(
            source, "", f"not valid YAML at {where}: {exc}", "fix the YAML syntax there"
        ) from exc
    if not isinstance(raw, dict):
        raise InputError(
            source,
            "",
            f"the top level must be a mapping, got {type(raw).__name__}",
            f"write the {what} as `key: value` lines",
        )
    return raw
