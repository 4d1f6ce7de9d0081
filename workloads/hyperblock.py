"""Read and rewrite a script's hyperparameter block through the AST: literals only, validated, nothing else touched.

The block is delimited by two marker comments. Each line in it assigns one literal to an UPPER_CASE
name and declares its type and range in a trailing comment:

    # --- hyperparameters ---
    DEPTH = 4                 # int [1, 8]: transformer blocks
    MATRIX_LR = 0.003         # float [1e-5, 0.3] log: learning rate of weight matrices
    OPTIMIZER = "adamw"       # choice [adamw, muon]: optimizer of the weight matrices
    ADAM_BETAS = (0.9, 0.95)  # float_tuple [0.5, 0.9999]: AdamW betas
    # --- end hyperparameters ---
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from search.pyast import parse_python
from search.params import ParamError, ParamKind, ParamSpec, ParamValue, literal_source, validate_changes, validate_value

BLOCK_START = "# --- hyperparameters"
BLOCK_END = "# --- end hyperparameters"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ANNOTATION = re.compile(
    r"^#\s*(?P<kind>int|float|bool|choice|float_tuple)\s*(?:\[(?P<range>[^\]]*)\])?\s*(?P<log>log)?\s*(?::\s*(?P<desc>.*))?$"
)


class ScriptError(ValueError):
    """The script's hyperparameter block is malformed (a bug in the workload, not in a proposal)."""


def _block_lines(lines: list[str]) -> tuple[int, int]:
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(BLOCK_START)]
    ends = [i for i, line in enumerate(lines) if line.strip().startswith(BLOCK_END)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
        raise ScriptError(f"expected one '{BLOCK_START} ...' line followed by one '{BLOCK_END} ...' line")
    return starts[0] + 1, ends[0] + 1  # 1-based line numbers, exclusive of the markers


def _assignments(source: str) -> list[tuple[ast.Assign, str]]:
    """The top-level single-name assignments inside the block, with their trailing comments."""
    lines = source.splitlines()
    first, last = _block_lines(lines)
    tree = parse_python(source)
    found = []
    for node in tree.body:
        if not (first < node.lineno < last):
            continue
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ScriptError(f"line {node.lineno}: only `NAME = literal` assignments belong in the hyperparameter block")
        if node.end_lineno != node.lineno:
            raise ScriptError(f"line {node.lineno}: a hyperparameter must fit on one line")
        line = lines[node.lineno - 1]
        comment = line[node.end_col_offset :].strip()
        found.append((node, comment))
    return found


def _parse_range(kind: ParamKind, text: str | None, name: str) -> dict[str, Any]:
    if kind is ParamKind.BOOL:
        return {}
    if text is None:
        raise ScriptError(f"{name}: a {kind.value} needs a [range] or [choices] annotation")
    items = [item.strip() for item in text.split(",") if item.strip()]
    if kind is ParamKind.CHOICE:
        return {"choices": tuple(items)}
    if len(items) != 2:
        raise ScriptError(f"{name}: range must be [low, high], got [{text}]")
    low, high = (float(item) for item in items)
    if low > high:
        raise ScriptError(f"{name}: empty range [{text}]")
    return {"low": low, "high": high}


def parse_params(source: str) -> list[ParamSpec]:
    """The parameter schema of a script: one ParamSpec per line of its hyperparameter block."""
    specs = []
    for node, comment in _assignments(source):
        name = node.targets[0].id  # type: ignore[attr-defined]
        if not _NAME.match(name):
            raise ScriptError(f"{name}: hyperparameter names are UPPER_CASE")
        match = _ANNOTATION.match(comment)
        if not match:
            raise ScriptError(f"{name}: missing or malformed annotation comment {comment!r}")
        kind = ParamKind(match["kind"])
        try:
            value = ast.literal_eval(node.value)
        except ValueError as error:
            raise ScriptError(f"{name}: value is not a literal") from error
        extra = _parse_range(kind, match["range"], name)
        length = len(value) if kind is ParamKind.FLOAT_TUPLE and isinstance(value, tuple) else None
        spec = ParamSpec(
            name=name,
            kind=kind,
            value=value,
            log=bool(match["log"]),
            description=(match["desc"] or "").strip(),
            length=length,
            **extra,
        )
        try:
            canonical = validate_value(spec, value)
        except ParamError as error:
            raise ScriptError(f"baseline value invalid: {error}") from error
        specs.append(spec.model_copy(update={"value": canonical}))
    if not specs:
        raise ScriptError("the hyperparameter block is empty")
    return specs


def apply_changes(source: str, changes: Mapping[str, Any], frozen: Iterable[str] = ()) -> str:
    """Rewrite the literals of the named parameters in `source`; everything else stays byte for byte."""
    specs = parse_params(source)
    clean = validate_changes(specs, changes, frozen)
    lines = source.splitlines(keepends=True)
    for node, _comment in _assignments(source):
        name = node.targets[0].id  # type: ignore[attr-defined]
        if name not in clean:
            continue
        index = node.lineno - 1
        line = lines[index]
        # col offsets are in UTF-8 bytes; the block is ASCII by construction, checked here.
        if not line.isascii():
            raise ScriptError(f"line {node.lineno}: the hyperparameter block must be ASCII")
        value_node = node.value
        lines[index] = line[: value_node.col_offset] + literal_source(clean[name]) + line[value_node.end_col_offset :]
    rewritten = "".join(lines)
    # Check the result: it parses, and exactly the intended values changed.
    after = {spec.name: spec.value for spec in parse_params(rewritten)}
    for name, value in clean.items():
        if after[name] != value:
            raise ScriptError(f"{name}: rewrite produced {after[name]!r}, expected {value!r}")  # pragma: no cover
    return rewritten


def current_values(source: str) -> dict[str, ParamValue]:
    return {spec.name: spec.value for spec in parse_params(source)}
