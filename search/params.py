"""Hyperparameter schema and value validation: the only gate between an LLM's values and the script."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict

# A literal the search may write: a number, a bool, a short string, or a short tuple of floats.
ParamValue = int | float | bool | str | tuple[float, ...]

MAX_STRING_LENGTH = 64
MAX_SHOWN_VALUE = 80


# A literal site's id is `scope:ordinal` (workloads/literal_sites.py); block names are UPPER_CASE, never with a colon.
SITE_SEPARATOR = ":"


def is_site_name(name: str) -> bool:
    """Whether a parameter name is a literal site's id rather than a block name."""
    return SITE_SEPARATOR in name


class ParamKind(str, Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    FLOAT_TUPLE = "float_tuple"


class ParamError(ValueError):
    """A value that may not be written into the script; the message says why, precisely."""


class ParamSpec(BaseModel):
    """One editable hyperparameter: its type, current value and allowed range or choices."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ParamKind
    value: ParamValue
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    length: int | None = None
    log: bool = False
    description: str = ""

    def describe_range(self) -> str:
        if self.kind is ParamKind.CHOICE:
            return "one of " + ", ".join(repr(c) for c in self.choices or ())
        if self.kind is ParamKind.BOOL:
            return "true or false"
        if self.kind is ParamKind.FLOAT_TUPLE:
            return f"{self.length} floats, each in [{number_text(self.low)}, {number_text(self.high)}]"
        return f"{self.kind.value} in [{number_text(self.low)}, {number_text(self.high)}]"

    def nearby_values(self, value: Any, steps: int = 4) -> list[Any]:
        """Valid values near `value`, nearest first: x2^k on a log scale, k tenths of the range otherwise (ints
        rounded), the other choices or bool. For repairs of broken constraints; empty for a tuple."""
        if self.kind is ParamKind.BOOL:
            return [not value]
        if self.kind is ParamKind.CHOICE:
            return [c for c in self.choices or () if c != value]
        if self.kind is ParamKind.FLOAT_TUPLE or self.low is None or self.high is None:
            return []
        number = float(value)
        found: list[Any] = []
        for k in range(1, steps + 1):
            for sign in (1, -1):
                if self.log and number > 0:
                    moved = number * 2.0 ** (sign * k)
                else:
                    moved = number + sign * k * (self.high - self.low) / 10
                candidate: Any = int(round(moved)) if self.kind is ParamKind.INT else moved
                if self.low <= candidate <= self.high and not same_value(candidate, value) and candidate not in found:
                    found.append(candidate)
        return found

    def distance(self, a: Any, b: Any) -> float:
        """How far apart two values of this parameter are, as a fraction of its range (log range for log-scale
        parameters); 1.0 for a different choice or bool, 0.0 for equal values."""
        if same_value(a, b):
            return 0.0
        if self.kind in (ParamKind.CHOICE, ParamKind.BOOL):
            return 1.0
        left = list(a) if isinstance(a, (list, tuple)) else [a]
        right = list(b) if isinstance(b, (list, tuple)) else [b]
        if len(left) != len(right):
            return 1.0
        return max(self._scalar_distance(x, y) for x, y in zip(left, right))

    def _scalar_distance(self, a: Any, b: Any) -> float:
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            return 1.0
        low, high = self.low, self.high
        if self.log and low is not None and high is not None and low > 0 and x > 0 and y > 0 and high > low:
            return abs(math.log(x) - math.log(y)) / (math.log(high) - math.log(low))
        if low is not None and high is not None and high > low:
            return abs(x - y) / (high - low)
        scale = max(abs(x), abs(y), 1e-12)
        return abs(x - y) / scale

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if self.kind is ParamKind.FLOAT_TUPLE:
            data["value"] = list(self.value)  # type: ignore[arg-type]
        return data


def number_text(number: float | None) -> str:
    """A range bound as written in a block line and in messages: 3 rather than 3.0, '?' when unknown."""
    if number is None:
        return "?"
    return repr(int(number)) if float(number).is_integer() and abs(number) < 1e15 else repr(number)


def shown(value: Any) -> str:
    """A bounded, printable form of an untrusted value for error messages."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 3] + "..."


def _as_finite_number(spec: ParamSpec, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        article = "an" if spec.kind is ParamKind.INT else "a"
        raise ParamError(f"{spec.name}: expected {article} {spec.kind.value}, got {type(value).__name__} {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"{spec.name}: {shown(value)} is not a finite number")
    return float(value)


def _check_range(spec: ParamSpec, number: float, original: Any, label: str | None = None) -> None:
    name = label or spec.name
    if spec.low is not None and number < spec.low or spec.high is not None and number > spec.high:
        raise ParamError(f"{name}: {shown(original)} is outside the allowed range [{number_text(spec.low)}, {number_text(spec.high)}]")


def validate_value(spec: ParamSpec, value: Any) -> ParamValue:
    """Return the canonical Python value for `value`, or raise ParamError with a precise reason."""
    if spec.kind is ParamKind.BOOL:
        if not isinstance(value, bool):
            raise ParamError(f"{spec.name}: expected true or false, got {type(value).__name__} {shown(value)}")
        return value
    if spec.kind is ParamKind.CHOICE:
        if not isinstance(value, str):
            raise ParamError(f"{spec.name}: expected one of {list(spec.choices or ())}, got {type(value).__name__} {shown(value)}")
        if len(value) > MAX_STRING_LENGTH or value not in (spec.choices or ()):
            raise ParamError(f"{spec.name}: {shown(value)} is not one of {list(spec.choices or ())}")
        return value
    if spec.kind is ParamKind.INT:
        number = _as_finite_number(spec, value)
        if not number.is_integer():
            raise ParamError(f"{spec.name}: expected an integer, got {shown(value)}")
        _check_range(spec, number, value)
        return int(number)
    if spec.kind is ParamKind.FLOAT:
        number = _as_finite_number(spec, value)
        _check_range(spec, number, value)
        return float(number)
    if spec.kind is ParamKind.FLOAT_TUPLE:
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{spec.name}: expected a list of {spec.length} numbers, got {type(value).__name__} {shown(value)}")
        if len(value) != spec.length:
            raise ParamError(f"{spec.name}: expected exactly {spec.length} numbers, got {len(value)}")
        items = []
        for position, item in enumerate(value):
            number = _as_finite_number(spec, item)
            _check_range(spec, number, item, label=f"{spec.name}[{position}]")
            items.append(float(number))
        return tuple(items)
    raise ParamError(f"{spec.name}: unsupported parameter kind {spec.kind}")  # pragma: no cover


def literal_source(value: ParamValue) -> str:
    """Python source text of a validated value (what is written into the script)."""
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(float(v)) for v in value) + ")"
    if isinstance(value, str):
        return json.dumps(value)  # validated choices are short ASCII: a double-quoted Python literal
    return repr(value)


def json_value(value: Any) -> Any:
    """The JSON form of a parameter value (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def same_value(a: Any, b: Any) -> bool:
    """Parameter values compare equal across JSON round trips (tuples vs lists, 3 vs 3.0)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def validate_changes(
    specs: Iterable[ParamSpec], changes: Mapping[str, Any], frozen: Iterable[str] = ()
) -> dict[str, ParamValue]:
    """Canonical values for `changes`, or ParamError naming the first offending parameter and why."""
    by_name = {spec.name: spec for spec in specs}
    frozen_set = set(frozen)
    if not isinstance(changes, Mapping):
        raise ParamError(f"changes must be an object of NAME: value, got {type(changes).__name__}")
    clean: dict[str, ParamValue] = {}
    for name, value in changes.items():
        if not isinstance(name, str) or name not in by_name:
            known = ", ".join(sorted(by_name))
            raise ParamError(f"unknown parameter {shown(name)}; editable parameters are: {known}")
        if name in frozen_set:
            raise ParamError(f"{name} is frozen in this search and may not be changed")
        clean[name] = validate_value(by_name[name], value)
    return clean
