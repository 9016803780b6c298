"""Checks of a trial's decoded options: which keys a choice takes, their types and bounds.

The space language validates study files before anything runs; these checks are the defensive
second line, for an objective called with hand-written or stale parameters. Each message names
the option (``model 'lstm'``), the key, what must hold and what was given, and lists the keys
the option takes, so the fix is in the message.

Why a declared table (:class:`Param`) rather than ``params["units"]`` in each builder: the
same table gives the error messages, the documented defaults and, for whoever generates or
checks spaces, the list of parameters each family, optimizer and schedule takes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: Marks a parameter without a default (it must be given).
REQUIRED: Any = object()

Kind = Literal["int", "float", "bool", "choice"]


@dataclass(frozen=True)
class Param:
    """One parameter of an option (a model family, an optimizer, a schedule).

    Attributes:
        name: Its key in the decoded parameters.
        kind: ``int``, ``float`` (ints accepted), ``bool`` or ``choice`` (one of ``choices``).
        default: Used when the key is absent; :data:`REQUIRED` when it must be given.
        ge: Inclusive lower bound, if any.
        gt: Exclusive lower bound, if any.
        le: Inclusive upper bound, if any.
        lt: Exclusive upper bound, if any.
        choices: The allowed strings of a ``choice``.
        doc: One line: what it is, and why its default.
    """

    name: str
    kind: Kind
    default: Any = REQUIRED
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        """Whether the key must be given."""
        return self.default is REQUIRED

    def rule(self) -> str:
        """What a valid value is, in words (``an integer >= 1``)."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = "an integer" if self.kind == "int" else "a number"
        bounds = [
            f"{op} {_number(bound)}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " ".join([noun, " and ".join(bounds)]) if bounds else noun

    def convert(self, where: str, value: Any) -> Any:
        """The value as a plain ``int``/``float``/``bool``/``str``, checked against the rule.

        Raises:
            ValueError: It is of the wrong type or out of bounds.
        """
        converted = self._typed(value)
        if converted is None or not self._in_bounds(converted):
            raise ValueError(f"{where}: `{self.name}` must be {self.rule()}, got {value!r}")
        return converted

    def _typed(self, value: Any) -> Any:
        if self.kind == "bool":
            return bool(value) if isinstance(value, bool | np.bool_) else None
        if isinstance(value, bool | np.bool_):
            return None  # True is an int to Python, never a width or a rate here
        if self.kind == "choice":
            return value if isinstance(value, str) and value in self.choices else None
        if self.kind == "int":
            if isinstance(value, numbers.Integral):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return None
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            return float(value)
        return None

    def _in_bounds(self, value: Any) -> bool:
        if self.kind in ("bool", "choice"):
            return True
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def describe(params: tuple[Param, ...]) -> str:
    """The keys an option takes, required first: ``units, layers; optional: downsample=1``."""
    required = [p.name for p in params if p.required]
    optional = [f"{p.name}={p.default!r}" for p in params if not p.required]
    parts = [", ".join(required) if required else "no required keys"]
    if optional:
        parts.append("optional: " + ", ".join(optional))
    return "; ".join(parts)


def resolve(where: str, given: Mapping[str, Any], params: tuple[Param, ...]) -> dict[str, Any]:
    """Check ``given`` against ``params`` and fill in the defaults.

    Args:
        where: How messages name the option, e.g. ``model 'lstm'``.
        given: The decoded parameters, without the ``name`` key.
        params: What the option takes.

    Returns:
        Every parameter's value, converted, defaults filled in.

    Raises:
        ValueError: A key is unknown or missing, or a value is invalid.
    """
    known = {p.name for p in params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; it takes {describe(params)}")
    missing = [p.name for p in params if p.required and p.name not in given]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; it takes {describe(params)}")
    return {
        p.name: p.convert(where, given[p.name]) if p.name in given else p.default for p in params
    }


def choose(
    key: str, value: Any, options: Mapping[str, tuple[Param, ...]]
) -> tuple[str, dict[str, Any]]:
    """Split a decoded conditional choice (``{"name": ..., **its params}``) and check it.

    Args:
        key: The choice's key in the trial's parameters (``model``, ``optimizer``, ...).
        value: Its decoded value.
        options: Each option's name and parameters.

    Returns:
        The option's name and its checked parameters, defaults filled in.

    Raises:
        ValueError: ``value`` is not a mapping with a known ``name``, or its parameters are
            invalid.
    """
    allowed = ", ".join(sorted(options))
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`{key}` must be a mapping with a `name` key (one of {allowed}) and that "
            f"option's parameters, got {value!r}"
        )
    name = value.get("name")
    if not isinstance(name, str) or name not in options:
        raise ValueError(f"`{key}.name` must be one of {allowed}, got {name!r}")
    rest = {k: v for k, v in value.items() if k != "name"}
    return name, resolve(f"{key} {name!r}", rest, options[name])
