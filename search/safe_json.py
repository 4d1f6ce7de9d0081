"""Bounded JSON decoding for untrusted text: size, nesting depth, NaN/Infinity, duplicate keys and numbers out of
range are refused before or while parsing, with a short ValueError an LLM or a user can act on; unpaired surrogates
and control characters in strings are replaced (`clean_text`), so no caller meets text it cannot print or encode.

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

# Numbers every consumer can use: an int fits a signed 64-bit integer (float() of a 300-digit int raises
# OverflowError, numpy and SQLite refuse past 64 bits); a float is finite with headroom below float's own limit.
MAX_INT = 2**63 - 1
MAX_INT_DIGITS = len(str(MAX_INT))
MAX_FLOAT = 1e300
MAX_NUMBER_CHARS = 100  # a longer literal is noise, whatever its value

# What no untrusted string keeps: C0 controls (but newline and tab), DEL, C1 controls, the bidirectional
# overrides and isolates (they reorder what a terminal or a page shows), and surrogates (UTF-8 cannot encode
# them: MLflow, pydantic's JSON, the console and the HTML report all fail on one).
_UNSAFE_CLASS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_UNSAFE_OR_LAYOUT = re.compile(f"[\t\n{_UNSAFE_CLASS}]")  # for one-line text: newline and tab go too
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(text: str, keep: str = "\n\t") -> str:
    """`text` with every character no output can take safely replaced by U+FFFD: unpaired surrogates, control
    characters other than those in `keep`, bidirectional overrides. Surrogate pairs are joined, CRLF becomes LF."""
    unsafe = _UNSAFE if "\n" in keep and "\t" in keep else _UNSAFE_OR_LAYOUT
    if not unsafe.search(text):
        return text
    if _SURROGATE.search(text):  # a pair stored as two code points is one character; a lone half is replaced
        text = _SURROGATE_PAIR.sub(_joined_pair, text)  # by hand: the confined worker cannot look codecs up
    if "\r\n" in text and "\n" in keep:
        text = text.replace("\r\n", "\n")
    return unsafe.sub(lambda match: match.group() if match.group() in keep else REPLACEMENT, text)


def _joined_pair(match: re.Match[str]) -> str:
    high, low = (ord(half) for half in match.group())
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def loads_bounded(text: str | bytes, max_bytes: int, max_depth: int, *, allow_constants: bool = False) -> Any:
    """json.loads with limits: at most `max_bytes` (UTF-8), at most `max_depth` nested arrays/objects,
    no NaN or Infinity (unless `allow_constants`), no duplicate keys in an object, integers within 64 bits,
    finite floats within +-1e300. Strings (keys too) come back through `clean_text`. Raises ValueError with a
    one-line message."""
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
        value = json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_int=_bounded_int,
                           parse_float=_bounded_float, parse_constant=float if allow_constants else _refuse_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} at position {error.pos}") from None
    except RecursionError:  # cannot happen below the depth limit; kept so no parse can abort a caller
        raise ValueError("the JSON is nested too deeply to parse") from None
    # Only an escape (\\u0000, but \\r, \\b and \\f too) or a raw unsafe character can put an unsafe character
    # into a string: texts with neither skip the walk.
    return _cleaned(value) if "\\" in text or _UNSAFE.search(text) else value


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


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS or abs(number := int(literal)) > MAX_INT:
        shown = literal if len(literal) <= 24 else f"{literal[:20]}... ({digits} digits)"
        raise ValueError(f"the JSON has the integer {shown}, outside +-{MAX_INT}")
    return number


def _bounded_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"the JSON has a number of {len(literal)} characters; the limit is {MAX_NUMBER_CHARS}")
    number = float(literal)
    if not abs(number) <= MAX_FLOAT:  # `not <=` refuses inf too
        raise ValueError(f"the JSON has the number {literal}, outside +-{MAX_FLOAT:g}")
    return number


def _cleaned(value: Any) -> Any:
    """`value` with `clean_text` applied to every string and key, without recursion (depth is bounded already)."""
    if isinstance(value, str):
        return clean_text(value)
    root = [value]
    stack: list[Any] = [root]
    while stack:
        container = stack.pop()
        if isinstance(container, list):
            for position, item in enumerate(container):
                if isinstance(item, str):
                    container[position] = clean_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
        else:
            cleaned: dict[str, Any] = {}
            for key, item in container.items():
                new_key = clean_text(key)
                if new_key in cleaned:
                    raise ValueError(f"the JSON repeats the key {new_key[:60]!r} once unprintable characters are replaced")
                if isinstance(item, str):
                    item = clean_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
                cleaned[new_key] = item
            container.clear()
            container.update(cleaned)
    return root[0]
