"""Search spaces: what a trial's parameters may be, declared in ``search_spaces/*.yaml``.

A space file is a tree. A mapping with a ``type`` key is a parameter (``float``, ``int`` or
``categorical``) or a conditional ``choice``; any other mapping is a group whose keys nest, and
a plain scalar is a constant. Every searcher sees the same tree and decodes to the same nested
dict, so an objective never knows which library chose its parameters::

    params:
      include: fragments/regularisation.yaml        # dropout, l2, noise_std (overridable here)
      batch_size: {type: categorical, choices: [32, 64]}
      model:
        type: choice                                 # one option is taken per trial ...
        options:
          resnet:                                    # ... and only its parameters exist
            blocks: {type: int, low: 1, high: 5}
          lstm:
            units: {type: int, low: 8, high: 64, log: true}
            downsample: 8                            # a constant of this option
      optimizer:
        name: adam                                   # constant
        learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}

A choice decodes to a dict holding the option's ``name`` and its own values: an LSTM trial gets
``{"model": {"name": "lstm", "units": 32, "downsample": 8}, ...}`` and has no ``blocks``.
Dotted names identify parameters in storage and on the command line; a parameter inside an
option carries the option in its name (``model`` is the choice, ``model.lstm.units`` the
LSTM's units), so a stored trial says which branch each value belongs to.

``include`` (a path or a list of paths, relative to the including file) merges fragment files
into a group or an option: a fragment is a group's body, may include others, and keys written
beside the ``include`` override the fragment's (groups merge key by key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hpsearch.errors import InputError
from hpsearch.spec._errors import Invalid, raise_input_error

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
            raise _empty_range(self.low, self.high)
        if self.log and self.low <= 0:
            raise Invalid(
                f"a log-scaled range needs `low > 0`, but low={self.low}",
                "give low > 0 (e.g. 1.0e-6), or remove `log: true`",
            )
        if self.log and self.step is not None:
            raise _step_and_log()
        if self.step is not None:
            # Decimal arithmetic on the written numbers, as Optuna's FloatDistribution checks:
            # a step that divides the range only to within rounding would have Optuna move
            # `high` down without a word (its top point never proposed, and values from other
            # searchers stored outside the stored distribution).
            span, step = _decimal(self.high) - _decimal(self.low), _decimal(self.step)
            if span % step:
                fitting = _decimal(self.low) + (span // step) * step
                raise Invalid(
                    f"`step` must divide `high - low` exactly, but step={self.step} and "
                    f"high - low = {span}",
                    f"give a step that divides high - low, or move high, e.g. high={fitting}",
                )
        return self

    def size(self) -> int | None:
        """How many values it takes (None: a continuum)."""
        if self.step is None:
            return None if self.high > self.low else 1
        return int((_decimal(self.high) - _decimal(self.low)) // _decimal(self.step)) + 1


class IntParam(_Param):
    """An integer parameter on ``[low, high]`` (both ends included), every ``step``."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.low > self.high:
            raise _empty_range(self.low, self.high)
        if self.log and self.low < 1:
            raise Invalid(
                f"a log-scaled integer range needs `low >= 1`, but low={self.low}",
                "give low >= 1, or remove `log: true`",
            )
        if self.log and self.step != 1:
            raise _step_and_log()
        if (self.high - self.low) % self.step:
            fitting = self.high - (self.high - self.low) % self.step
            raise Invalid(
                f"`step` must divide `high - low`, but step={self.step} and "
                f"high - low = {self.high - self.low}",
                f"give a step that divides high - low, or move high, e.g. high={fitting}",
            )
        return self

    def size(self) -> int:
        """How many values it takes."""
        return (self.high - self.low) // self.step + 1


class CategoricalParam(_Param):
    """One of a list of choices: numbers, strings or booleans."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        seen = [json.dumps(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise Invalid(
                f"choices must be distinct, but got {self.choices}",
                "keep one of each choice",
            )
        for i, first in enumerate(self.choices):
            for second in self.choices[i + 1 :]:
                if first == second:  # 1 == true == 1.0 in Python, and so in Optuna's storage
                    raise Invalid(
                        f"choices {first!r} and {second!r} are the same value to Python and "
                        "Optuna (one would be stored as the other)",
                        "keep one of them, or quote them as strings",
                    )
        return self

    def size(self) -> int:
        """How many values it takes."""
        return len(self.choices)


def _empty_range(low: float, high: float) -> Invalid:
    return Invalid(
        f"empty range: `low <= high` must hold, but low={low}, high={high}",
        f"swap low and high (low: {high}, high: {low})",
    )


def _step_and_log() -> Invalid:
    return Invalid(
        "`step` and `log: true` cannot be combined",
        "remove `step` (a log range is continuous) or `log: true`",
    )


def _decimal(value: float) -> Decimal:
    """The number as written (``0.1`` is ``Decimal("0.1")``, not its binary approximation)."""
    return Decimal(str(value))


Param = FloatParam | IntParam | CategoricalParam
_BY_TYPE: dict[str, type[Param]] = {
    "float": FloatParam,
    "int": IntParam,
    "categorical": CategoricalParam,
}
_LEAVES = (FloatParam, IntParam, CategoricalParam)
#: The key a decoded choice holds its option's name under; no option may use it otherwise.
OPTION_KEY = "name"


@dataclass(frozen=True)
class Choice:
    """A conditional choice: each trial takes one option, and only that option's parameters.

    Attributes:
        options: Each option's name and its group of parameters, constants and choices (an
            option may be empty, e.g. ``constant: {}`` among learning-rate schedules).
    """

    options: dict[str, dict[str, Node]]

    def as_param(self) -> CategoricalParam:
        """The choice itself, as the categorical parameter a searcher draws."""
        return CategoricalParam(type="categorical", choices=list(self.options))

    def size(self) -> int:
        """How many options."""
        return len(self.options)


Node = Param | Choice | Scalar | dict[str, "Node"]
Draw = Callable[[str, Param], Any]


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
        family: The model family this space builds (e.g. ``resnet``), if fixed.
        tree: Nested mapping of names to parameters, choices, constants and groups.
        includes: Every fragment file it read, in order.
    """

    source: Path
    family: str | None
    tree: dict[str, Node] = field(repr=False)
    includes: tuple[Path, ...] = ()

    def params(self) -> dict[str, Param]:
        """Every searched name in every branch, in file order; a choice as a categorical."""
        return dict(_params(self.tree, ""))

    def choice_names(self) -> list[str]:
        """The dotted names of the conditional choices (``model``, ``lr_schedule``, ...)."""
        return [name for name, node in _nodes(self.tree, "") if isinstance(node, Choice)]

    @property
    def conditional(self) -> bool:
        """Whether some parameter exists only in some trials (the space has a choice)."""
        return any(isinstance(node, Choice) for _, node in _nodes(self.tree, ""))

    def sample(self, draw: Draw) -> dict[str, Any]:
        """Walk the tree once, drawing each parameter the drawn options make active.

        ``draw(name, param)`` returns the value of one parameter (for a choice, ``param`` is
        :meth:`Choice.as_param` and the value an option name). Every searcher converter is a
        ``draw``; the walk, and with it the conditional structure, is the same for all.

        Returns:
            The flat values by dotted name: the trial's active parameters only.
        """
        flat: dict[str, Any] = {}
        _sample(self.tree, "", draw, flat)
        return flat

    def decode(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Nest dotted ``flat`` values, filling in constants: what an objective receives.

        Raises:
            ValueError: A value of the active branches is missing, or a choice holds an
                option the space does not have.
        """
        return _decode(self.tree, "", flat)

    def encode(self, nested: Mapping[str, Any]) -> dict[str, Any]:
        """The flat values of a decoded trial (the inverse of :meth:`decode`), every one checked.

        For configurations a user writes by hand (``hpsearch run --enqueue FILE``): the seed's
        ResNet-10 written as the objective would receive it. Constants may be left out.

        Raises:
            ValueError: A key the space does not have, a missing value, a value out of range
                or off its step, an unknown option, or a constant given another value; the
                message starts with the dotted key.
        """
        flat: dict[str, Any] = {}
        _encode(self.tree, "", nested, flat)
        return flat

    def choice_options(self, name: str) -> tuple[str, ...] | None:
        """The options of the top-level choice ``name`` (``model``), or None if there is none."""
        node = self.tree.get(name)
        return tuple(node.options) if isinstance(node, Choice) else None

    def restrict_choice(self, name: str, keep: Iterable[str]) -> SearchSpace:
        """This space with the top-level choice ``name`` cut down to the options in ``keep``.

        A task's default space lists every model family; data of one input rank fits only some
        (an LSTM reads sequences, not count maps), and a searcher must never propose a family
        that cannot be built. The result has its own fingerprint, as it is another space.

        Raises:
            ValueError: ``name`` is not a top-level choice, or no option would be left.
        """
        node = self.tree.get(name)
        if not isinstance(node, Choice):
            raise ValueError(f"{self.source} has no top-level choice {name!r}")
        wanted = set(keep)
        options = {k: v for k, v in node.options.items() if k in wanted}
        if not options:
            raise ValueError(
                f"none of {name}'s options {sorted(node.options)} is among {sorted(wanted)}"
            )
        tree = {**self.tree, name: Choice(options)}
        return SearchSpace(self.source, self.family, tree, self.includes)

    def size(self) -> int | None:
        """Points of the space (options add, groups multiply); None if some range is a continuum."""
        return _size(self.tree)

    def fingerprint(self) -> str:
        """A short hash of the space, stored with a study to refuse mixing spaces in one."""
        canonical = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for provenance in storage."""
        return {"family": self.family, "params": _dump(self.tree)}


def _nodes(tree: Mapping[str, Node], prefix: str) -> Iterator[tuple[str, Node]]:
    """Every node under ``tree`` with its dotted name, options' contents included."""
    for key, node in tree.items():
        name = f"{prefix}{key}"
        yield name, node
        if isinstance(node, dict):
            yield from _nodes(node, name + ".")
        elif isinstance(node, Choice):
            for option, body in node.options.items():
                yield from _nodes(body, f"{name}.{option}.")


def _params(tree: Mapping[str, Node], prefix: str) -> Iterator[tuple[str, Param]]:
    for name, node in _nodes(tree, prefix):
        if isinstance(node, _LEAVES):
            yield name, node
        elif isinstance(node, Choice):
            yield name, node.as_param()


def _sample(tree: Mapping[str, Node], prefix: str, draw: Draw, flat: dict[str, Any]) -> None:
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node, _LEAVES):
            flat[name] = draw(name, node)
        elif isinstance(node, Choice):
            option = draw(name, node.as_param())
            flat[name] = option
            _sample(node.options[option], f"{name}.{option}.", draw, flat)
        elif isinstance(node, dict):
            _sample(node, name + ".", draw, flat)


def _decode(tree: Mapping[str, Node], prefix: str, flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node, (*_LEAVES, Choice)) and name not in flat:
            raise ValueError(f"no value for {name!r}, which the trial's branches make active")
        if isinstance(node, _LEAVES):
            nested[key] = flat[name]
        elif isinstance(node, Choice):
            option = flat[name]
            if option not in node.options:
                raise ValueError(f"{name!r} = {option!r} is none of {list(node.options)}")
            body = _decode(node.options[option], f"{name}.{option}.", flat)
            nested[key] = {OPTION_KEY: option, **body}
        elif isinstance(node, dict):
            nested[key] = _decode(node, name + ".", flat)
        else:
            nested[key] = node
    return nested


def contains(param: Param, value: Any) -> bool:
    """Whether ``value`` is one of ``param``'s values (in range, on its step, a choice)."""
    if isinstance(param, CategoricalParam):
        return any(json.dumps(value) == json.dumps(choice) for choice in param.choices)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(param, IntParam):
        return (
            float(value).is_integer()
            and param.low <= value <= param.high
            and (int(value) - param.low) % param.step == 0
        )
    if not param.low <= value <= param.high:
        return False
    if param.step is None:
        return True
    steps = (value - param.low) / param.step
    return abs(steps - round(steps)) <= 1e-9 * max(1.0, abs(steps))


def _encode(
    tree: Mapping[str, Node], prefix: str, nested: Mapping[str, Any], flat: dict[str, Any]
) -> None:
    unknown = sorted(set(nested) - set(tree))
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: not in the space (it has {sorted(tree)})")
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if key not in nested:
            if isinstance(node, (*_LEAVES, Choice, dict)):
                raise ValueError(f"{name}: missing")
            continue
        value = nested[key]
        if isinstance(node, _LEAVES):
            if not contains(node, value):
                raise ValueError(f"{name}: {value!r} is not a value of {_dump({key: node})[key]}")
            flat[name] = value
        elif isinstance(node, Choice):
            if not isinstance(value, Mapping) or OPTION_KEY not in value:
                raise ValueError(f"{name}: give the option as {{{OPTION_KEY}: OPTION, ...}}")
            option = value[OPTION_KEY]
            if option not in node.options:
                raise ValueError(f"{name}: {option!r} is none of {list(node.options)}")
            flat[name] = option
            body = {k: v for k, v in value.items() if k != OPTION_KEY}
            _encode(node.options[option], f"{name}.{option}.", body, flat)
        elif isinstance(node, dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"{name}: a group, give a mapping")
            _encode(node, name + ".", value, flat)
        elif value != node:
            raise ValueError(f"{name}: the space fixes it at {node!r}, got {value!r}")


def _size(tree: Mapping[str, Node]) -> int | None:
    total: int | None = 1
    for node in tree.values():
        if isinstance(node, _LEAVES):
            part = node.size()
        elif isinstance(node, Choice):
            sizes = [_size(body) for body in node.options.values()]
            part = None if None in sizes else sum(s for s in sizes if s is not None)
        elif isinstance(node, dict):
            part = _size(node)
        else:
            continue
        total = None if total is None or part is None else total * part
    return total


def _dump(tree: Mapping[str, Node]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, node in tree.items():
        if isinstance(node, dict):
            out[key] = _dump(node)
        elif isinstance(node, Choice):
            out[key] = {
                "type": "choice",
                "options": {name: _dump(body) for name, body in node.options.items()},
            }
        elif isinstance(node, _Param):
            out[key] = node.model_dump(exclude_defaults=True) | {"type": node.type}
        else:
            out[key] = node
    return out


@dataclass
class _Reader:
    """Parses one space file and the fragments it includes, remembering what it read."""

    includes: list[Path] = field(default_factory=list)

    def group(
        self,
        raw: Mapping[str, Any],
        source: Path,
        loc: tuple[str, ...],
        chain: tuple[Path, ...],
        *,
        empty_ok: bool = False,
    ) -> dict[str, Node]:
        merged: dict[str, Node] = {}
        if "include" in raw:
            for path in self._include_paths(raw["include"], source, loc, chain):
                fragment = read_yaml_mapping(path, what="space fragment")
                merged = _merge(merged, self.group(fragment, path, (), (*chain, path)))
        local: dict[str, Node] = {}
        for key, value in raw.items():
            if key == "include":
                continue
            local[key] = self.node(key, value, source, (*loc, str(key)), chain)
        merged = _merge(merged, local)
        if not merged and not empty_ok:
            raise InputError(
                source, ".".join(loc), "empty group", "add parameters to the group or remove it"
            )
        return merged

    def _include_paths(
        self, value: Any, source: Path, loc: tuple[str, ...], chain: tuple[Path, ...]
    ) -> list[Path]:
        key = ".".join((*loc, "include"))
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) and item for item in items):
            raise InputError(
                source,
                key,
                f"`include` must be a file path or a list of them, got {value!r}",
                "write e.g. `include: fragments/regularisation.yaml`",
            )
        paths = []
        for item in items:
            path = (source.parent / item).resolve()
            trail = " -> ".join(str(p) for p in (*chain, path))
            if path in chain:
                raise InputError(
                    source,
                    key,
                    f"include cycle: {trail}",
                    "remove the include that leads back to a file already being read",
                )
            if not path.is_file():
                raise InputError(
                    source,
                    key,
                    f"included file {item!r} not found (looked at {path}; chain: {trail})",
                    "give a path relative to the including file's folder",
                )
            self.includes.append(path)
            paths.append(path)
        return paths

    def node(
        self, key: Any, value: Any, source: Path, loc: tuple[str, ...], chain: tuple[Path, ...]
    ) -> Node:
        where = ".".join(loc)
        if not isinstance(key, str) or not key.isidentifier():
            raise InputError(
                source,
                where,
                f"parameter name {key!r} is not a valid name",
                "use letters, digits and underscores, not starting with a digit",
            )
        if isinstance(value, Mapping) and "type" in value:
            if value["type"] == "choice":
                return self.choice(value, source, loc, chain)
            kind = _BY_TYPE.get(str(value["type"]))
            if kind is None:
                raise InputError(
                    source,
                    f"{where}.type",
                    f"unknown parameter type {value['type']!r}",
                    f"use one of {', '.join([*_BY_TYPE, 'choice'])}",
                )
            try:
                return kind.model_validate(dict(value))
            except ValidationError as exc:
                raise raise_input_error(exc, source, prefix=loc, model=kind) from exc
        if isinstance(value, Mapping):
            return self.group(value, source, loc, chain)
        if isinstance(value, list):
            raise InputError(
                source,
                where,
                f"a bare list {value!r} is ambiguous",
                "write `{type: categorical, choices: [...]}` to search over it",
            )
        return value  # type: ignore[no-any-return]

    def choice(
        self, raw: Mapping[str, Any], source: Path, loc: tuple[str, ...], chain: tuple[Path, ...]
    ) -> Choice:
        where = ".".join(loc)
        unknown = sorted(set(raw) - {"type", "options", "description"})
        if unknown:
            raise InputError(
                source,
                f"{where}.{unknown[0]}",
                f"a choice takes `options` (and a `description`), not {unknown}",
                "put the options' parameters under `options: {NAME: {...}}`",
            )
        options = raw.get("options")
        if not isinstance(options, Mapping) or not options:
            raise InputError(
                source,
                f"{where}.options",
                f"a choice needs a non-empty mapping of options, got {options!r}",
                "write `options: {adam: {learning_rate: ...}, sgd: {...}}` (an option may be {})",
            )
        parsed: dict[str, dict[str, Node]] = {}
        for name, body in options.items():
            at = (*loc, "options", str(name))
            if not isinstance(name, str) or not name.isidentifier():
                raise InputError(
                    source,
                    ".".join(at),
                    f"option name {name!r} is not a valid identifier",
                    "use letters, digits and underscores, not starting with a digit",
                )
            if body is None:
                body = {}
            if not isinstance(body, Mapping):
                raise InputError(
                    source,
                    ".".join(at),
                    f"an option is a mapping of its parameters, got {body!r}",
                    f"write `{name}: {{}}` for an option without parameters",
                )
            group = self.group(body, source, at, chain, empty_ok=True)
            if OPTION_KEY in group:
                raise InputError(
                    source,
                    ".".join((*at, OPTION_KEY)),
                    f"`{OPTION_KEY}` is reserved: a decoded choice holds its option's name there",
                    "rename the parameter",
                )
            parsed[name] = group
        return Choice(options=parsed)


def _merge(base: Mapping[str, Node], over: Mapping[str, Node]) -> dict[str, Node]:
    """``over`` on top of ``base``: groups merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, node in over.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(node, dict):
            merged[key] = _merge(below, node)
        else:
            merged[key] = node
    return merged


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space file and the fragments it includes.

    Raises:
        InputError: The file or a fragment is missing or not YAML, an include is missing or
            cyclic, or a parameter, choice or name is invalid.
    """
    source = Path(path)
    raw = read_yaml_mapping(source, what="search space")
    try:
        document = _SpaceFile.model_validate(raw)
    except ValidationError as exc:
        raise raise_input_error(exc, source, model=_SpaceFile) from exc
    reader = _Reader()
    tree = reader.group(document.params, source, ("params",), (source.resolve(),))
    space = SearchSpace(
        source=source, family=document.family, tree=tree, includes=tuple(reader.includes)
    )
    if not space.params():
        raise InputError(
            source,
            "params",
            "declares no searched parameter, only constants",
            "give at least one parameter a `type: float|int|categorical|choice`",
        )
    return space


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key = key
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
        raw = yaml.load(source.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise InputError(
            source,
            str(exc.key),
            f"the key {exc.key!r} is given twice (again at line {exc.line})",
            "keep one of them: YAML would silently use the last",
        ) from exc
    except yaml.YAMLError as exc:
        problem, fix = _yaml_problem(exc)
        raise InputError(source, "", problem, fix) from exc
    if raw is None:
        raise InputError(source, "", "the file is empty", f"write the {what} as `key: value` lines")
    if not isinstance(raw, dict):
        raise InputError(
            source,
            "",
            f"the top level must be a mapping, got {type(raw).__name__}",
            f"write the {what} as `key: value` lines",
        )
    return raw


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """One line saying where and what PyYAML found, and the fix for the commonest slips.

    PyYAML's own text spans several lines, quotes the source as ``<unicode string>`` and
    repeats the offending line twice; the line, the column and the problem are what count.
    """
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
    context = getattr(exc, "context", None) or ""
    start = getattr(exc, "context_mark", None)
    opened = f" at line {start.line + 1}" if start is not None else ""
    text = f"not valid YAML at {where}: {problem}"
    if context:
        text += f" ({context}{opened})"
    if "mapping values are not allowed" in problem:
        fix = 'quote the value: a plain value must not hold ": " (write e.g. "a: b")'
    elif "'\\t'" in problem:
        fix = "indent with spaces: YAML does not allow tabs"
    elif "flow mapping" in context:
        fix = f"close the `{{` opened{opened} with `}}`, its items separated by commas"
    elif "flow sequence" in context:
        fix = f"close the `[` opened{opened} with `]`, its items separated by commas"
    elif "quoted scalar" in context:
        fix = f"close the quote opened{opened}"
    elif "block end" in problem:
        fix = "indent the line as far as the keys beside it"
    else:
        fix = "fix the YAML syntax there"
    return text, fix
