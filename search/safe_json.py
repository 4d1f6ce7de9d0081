"""Bounded JSON decoding for untrusted text: size, nesting depth, NaN/Infinity and duplicate keys are refused
before or while parsing, with a short ValueError an LLM or a user can act on.

Standard library only, and importing nothing of ours: the sandbox worker loads this file by path to
check its own answers with the same rules the host applies to them.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Characters that matter for nesting: brackets, quotes, and a backslash with the character it escapes
# (so an escaped quote inside a string does not end it). Everything else is skipped by the regex engine.
_STRUCTURE = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
_OPENERS = frozenset("[{")
_CLOSERS = frozenset("]}")


def loads_bounded(text: str | bytes, max_bytes: int, max_depth: int) -> Any:
    """json.loads with limits: at most `max_bytes` (UTF-8), at most `max_depth` nested arrays/objects,
    no NaN or Infinity, no duplicate keys in an object. Raises ValueError with a one-line message."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > max_bytes:
            raise ValueError(f"the JSON is {len(text)} bytes; the limit is {max_bytes}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"the JSON is not UTF-8 text (byte {error.start})") from None
    elif not isinstance(text, str):
        raise ValueError(f"expected JSON text, got {type(text).__name__}")
    elif len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValueError(f"the JSON is {len(text.encode('utf-8', 'surrogatepass'))} bytes; the limit is {max_bytes}")
    depth = nesting_depth(text, max_depth)
    if depth > max_depth:
        raise ValueError(f"the JSON is nested deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at position {error.pos}") from None
    except RecursionError:  # cannot happen below the depth limit; kept so no parse can abort a caller
        raise ValueError("the JSON is nested too deeply to parse") from None


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects outside strings, without recursion. Stops counting once
    `stop_above` is exceeded. Text that is not JSON gets a best-effort count (the parser refuses it anyway)."""
    depth = deepest = 0
    in_string = False
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:  # inside a string, or an escape (invalid outside one)
            continue
        elif token in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif token in _CLOSERS:
            depth -= 1
    return deepest


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the JSON repeats the key {key[:60]!r} in one object")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the JSON contains {name}, which is not a number in JSON")
