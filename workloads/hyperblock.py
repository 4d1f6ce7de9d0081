"""Read and rewrite a script's hyperparameter block through the AST: literals only, validated, nothing else touched.

The block is delimited by two marker comments. Each line in it assigns one literal to an UPPER_CASE name; a
trailing annotation comment may declare its kind and range, and comment lines may declare constraints:

    # --- hyperparameters ---
    DEPTH = 4                 # int [1, 8]: transformer blocks
    MATRIX_LR = 0.003         # float [1e-5, 0.3] log: learning rate of weight matrices
    OPTIMIZER = "adamw"       # choice [adamw, muon]: optimizer of the weight matrices
    ADAM_BETAS = (0.9, 0.95)  # float_tuple [0.5, 0.9999]: AdamW betas
    WARMUP = 0.1              # warmup fraction (no annotation: kind and range are inferred)
    # constraint: WARMUP <= 0.5
    # --- end hyperparameters ---

Without an annotation (or with a kind but no range) the kind and range are inferred from the literal
(`infer_spec`, the rule the README documents):
    bool                    -> bool
    float v > 0             -> float [v/10, 10 v], log scale
    float 0                 -> float [0, 1]
    float v < 0             -> float [10 v, v/10]
    int v > 0               -> int [max(1, v // 4), 4 v], log scale
    int 0                   -> int [0, 10]
    int v < 0               -> int [4 v, min(-1, v // 4)]
    str                     -> choice of that one value (annotate `# choice [a, b]` to search it)
    tuple of numbers        -> float_tuple, each in [0, 1] when all are, else [min/10, 10 max] (or the negatives)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from search.constraints import Constraint, ConstraintError, parse_constraint
from search.params import ParamError, ParamKind, ParamSpec, literal_source, validate_changes, validate_value
from search.pyast import parse_python

BLOCK_START = "# --- hyperparameters"
BLOCK_END = "# --- end hyperparameters"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ANNOTATION = re.compile(
    r"^#\s*(?P<kind>int|float|bool|choice|float_tuple)\b\s*(?:\[(?P<range>[^\]]*)\])?\s*(?P<log>log)?\s*(?::\s*(?P<desc>.*))?$"
)
_CONSTRAINT = re.compile(r"^#\s*constraint\s*:\s*(?P<expr>.+)$")


class ScriptError(ValueError):
    """The script's hyperparameter block is malformed (a bug in the script, not in a proposal)."""


@dataclass(frozen=True)
class Block:
    """What a hyperparameter block declares: its parameters (in order) and constraints."""

    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...]

    def spec(self, name: str) -> ParamSpec:
        return next(spec for spec in self.params if spec.name == name)


def block_span(source: str) -> tuple[int, int]:
    """The 1-based line numbers of the block's two marker lines (what lies strictly between them is the block)."""
    return _block_lines(source.splitlines())


def splice(line: str, start: int, end: int, text: str) -> str:
    """`line` with its UTF-8 byte columns [start, end) (an AST node's col offsets) replaced by `text`."""
    raw = line.encode("utf-8")
    return (raw[:start] + text.encode("utf-8") + raw[end:]).decode("utf-8")


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
    try:
        tree = parse_python(source)
    except SyntaxError as error:
        raise ScriptError(f"the script does not parse: line {error.lineno}: {error.msg}") from None
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


def _constraint_texts(source: str) -> list[tuple[int, str]]:
    lines = source.splitlines()
    first, last = _block_lines(lines)
    found = []
    for number in range(first + 1, last):
        match = _CONSTRAINT.match(lines[number - 1].strip())
        if match:
            found.append((number, match["expr"].strip()))
    return found


def infer_spec(name: str, value: Any, kind: ParamKind | None = None, description: str = "") -> ParamSpec:
    """The kind and range of an unannotated literal (or of an annotated kind without a range), by the rule above."""
    if kind is None:
        kind = _kind_of(name, value)
    if kind is ParamKind.BOOL:
        return ParamSpec(name=name, kind=kind, value=value, description=description)
    if kind is ParamKind.CHOICE:
        return ParamSpec(name=name, kind=kind, value=value, choices=(str(value),), description=description)
    if kind is ParamKind.FLOAT_TUPLE:
        numbers = [float(v) for v in value]
        if all(0.0 <= v <= 1.0 for v in numbers):
            low, high = 0.0, 1.0
        else:
            low, high = _float_range(min(numbers))[0], _float_range(max(numbers))[1]
        return ParamSpec(name=name, kind=kind, value=tuple(numbers), low=low, high=high, length=len(numbers),
                         description=description)
    if kind is ParamKind.INT:
        number = int(value)
        if number > 0:
            return ParamSpec(name=name, kind=kind, value=number, low=max(1, number // 4), high=4 * number,
                             log=True, description=description)
        low, high = (0, 10) if number == 0 else (4 * number, min(-1, number // 4))
        return ParamSpec(name=name, kind=kind, value=number, low=low, high=high, description=description)
    low, high = _float_range(float(value))
    return ParamSpec(name=name, kind=ParamKind.FLOAT, value=float(value), low=low, high=high,
                     log=float(value) > 0, description=description)


def _float_range(value: float) -> tuple[float, float]:
    if value > 0:
        return _round(value / 10), _round(value * 10)
    if value < 0:
        return _round(value * 10), _round(value / 10)
    return 0.0, 1.0


def _round(number: float) -> float:
    """A bound as a user would write it (0.0003, not 0.00030000000000000003)."""
    return float(f"{number:.6g}")


def _kind_of(name: str, value: Any) -> ParamKind:
    if isinstance(value, bool):
        return ParamKind.BOOL
    if isinstance(value, int):
        return ParamKind.INT
    if isinstance(value, float):
        return ParamKind.FLOAT
    if isinstance(value, str):
        return ParamKind.CHOICE
    if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ParamKind.FLOAT_TUPLE
    raise ScriptError(f"{name}: {type(value).__name__} literals are not hyperparameters; use a number, bool, string "
                      "or tuple of numbers, or move it out of the block")


def _parse_range(kind: ParamKind, text: str, name: str) -> dict[str, Any]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if kind is ParamKind.CHOICE:
        if not items:
            raise ScriptError(f"{name}: a choice needs at least one value in [brackets]")
        return {"choices": tuple(items)}
    if len(items) != 2:
        raise ScriptError(f"{name}: range must be [low, high], got [{text}]")
    try:
        low, high = (float(item) for item in items)
    except ValueError:
        raise ScriptError(f"{name}: range bounds must be numbers, got [{text}]") from None
    if low > high:
        raise ScriptError(f"{name}: empty range [{text}]")
    return {"low": low, "high": high}


def _spec_of(node: ast.Assign, comment: str) -> ParamSpec:
    name = node.targets[0].id  # type: ignore[attr-defined]
    if not _NAME.match(name):
        raise ScriptError(f"{name}: hyperparameter names are UPPER_CASE")
    try:
        value = ast.literal_eval(node.value)
    except ValueError:
        raise ScriptError(f"{name}: the value is not a literal (line {node.lineno})") from None
    match = _ANNOTATION.match(comment)
    description = comment.lstrip("#").strip() if match is None else (match["desc"] or "").strip()
    try:
        spec = _declared_spec(name, value, match, description)
    except (ValidationError, TypeError, ValueError) as error:
        if isinstance(error, ScriptError):
            raise
        raise ScriptError(f"{name} (line {node.lineno}): {type(value).__name__} {value!r} does not fit its annotation") from None
    try:
        canonical = validate_value(spec, value)
    except ParamError as error:
        raise ScriptError(f"baseline value invalid: {error}") from error
    return spec.model_copy(update={"value": canonical})


def _declared_spec(name: str, value: Any, match: re.Match[str] | None, description: str) -> ParamSpec:
    if match is None or (match["range"] is None and match["kind"] != "bool"):
        kind = ParamKind(match["kind"]) if match else None
        return infer_spec(name, value, kind, description)
    kind = ParamKind(match["kind"])
    extra = {} if kind is ParamKind.BOOL else _parse_range(kind, match["range"], name)
    length = len(value) if kind is ParamKind.FLOAT_TUPLE and isinstance(value, tuple) else None
    return ParamSpec(name=name, kind=kind, value=value, log=bool(match["log"]), description=description,
                     length=length, **extra)


def parse_block(source: str) -> Block:
    """The parameters and constraints declared by a script's hyperparameter block."""
    specs = [_spec_of(node, comment) for node, comment in _assignments(source)]
    if not specs:
        raise ScriptError("the hyperparameter block is empty")
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScriptError(f"assigned twice in the hyperparameter block: {', '.join(duplicates)}")
    constraints = []
    for line, text in _constraint_texts(source):
        try:
            constraints.append(parse_constraint(text, names))
        except ConstraintError as error:
            raise ScriptError(f"line {line}: {error}") from None
    block = Block(params=tuple(specs), constraints=tuple(constraints))
    baseline = {spec.name: spec.value for spec in specs}
    for constraint in block.constraints:
        try:
            holds = constraint.holds(baseline)
        except ConstraintError as error:
            raise ScriptError(str(error)) from None
        if not holds:
            raise ScriptError(f"the baseline breaks its own {constraint.explain(baseline)}")
    return block


def parse_params(source: str) -> list[ParamSpec]:
    """The parameter schema of a script: one ParamSpec per line of its hyperparameter block."""
    return list(parse_block(source).params)


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
        lines[index] = splice(line, value_node.col_offset, value_node.end_col_offset, literal_source(clean[name]))
    rewritten = "".join(lines)
    # Check the result: it parses, and exactly the intended values changed. (The ranges stay those of the
    # original block: an inferred range is relative to the baseline literal, not to the rewritten one.)
    after = {name: ast.literal_eval(node.value) for name, node in
             ((n.targets[0].id, n) for n, _ in _assignments(rewritten))}  # type: ignore[attr-defined]
    for name, value in clean.items():
        if literal_source(clean[name]) != literal_source(after[name] if not isinstance(value, tuple) else tuple(after[name])):
            raise ScriptError(f"{name}: rewrite produced {after[name]!r}, expected {value!r}")  # pragma: no cover
    return rewritten
