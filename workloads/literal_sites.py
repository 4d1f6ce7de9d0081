"""Literal sites (`edits = literals`): the numeric literals of the editable script outside its hyperparameter block,
each addressed by a stable id, ranked, offered to the search as a parameter and rewritten through the AST.

An id is the dotted path of the enclosing classes and functions, a colon, and the literal's ordinal among ALL numeric
literals of that scope in source order (skipped ones included, so a value never moves an id): `GPT._init_weights:1`
is the second number in `GPT._init_weights`; `global:0` is the first number at the top level outside the block (no
function or class can be called `global`). A parameter default belongs to its function (`rotary_tables:0` is
`base=10000.0`). Ids survive edits anywhere else in the file; they are MLflow-safe (letters, digits, `_ . :`).

A literal is a site unless (the reason is recorded; README "Bring your own training script"):
    marked      its line carries `# bilevel: fixed`
    index       it sits in a subscript (`x[..., :2]`, `cos[:, :, :t]`)
    axis        it is a `dim=`/`axis=`/`dims=`/`keepdim=` argument, or a positional argument of a shape method
                (`view`, `reshape`, `transpose`, `permute`, `size`, `unsqueeze`, ...)
    output      it is inside `print(...)`, a logging call or an f-string
    check       it is inside an `assert` or `raise` statement
    interval    it is the right operand of `%` (`step % 100`: a print or eval interval)
    equality    it is an operand of `==` or `!=` (`p.ndim == 2`)
    math        it is a direct argument of a `math.*` call (`math.log(2)`, `math.sqrt(3.0)`)
    guard       an unnamed float below 1e-5 in magnitude (`x + 1e-8`: a numerical guard)
    identity    an unnamed 0, 1, -1 (int or float) or int 2: indices, counters, identities, halves, squares;
                named ones (a keyword argument `std=1.0`, a parameter default) stay sites
Bools are not numbers here; complex numbers are skipped. Negative literals (`-0.5`, a unary minus) are one site.

Ranking (the search space keeps the best `max_sites`): a keyword category of the enclosing scope, else of the line
and its comment, by whole words (init 3, schedule 3, optimiser 3, model 2, other 0: `CATEGORIES`), +2 for a float, +1 for a named literal (keyword argument,
parameter default, or `NAME = literal`); ties in source order. The range is the block's inferred one
(`hyperblock.infer_spec`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

from search.params import SITE_SEPARATOR, ParamSpec, ParamValue, literal_source, same_value
from search.pyast import parse_python
from workloads.hyperblock import ScriptError, block_span, infer_spec, splice

MARKER = "# bilevel: fixed"
TOP_SCOPE = "global"
MAX_SHOWN_LINE = 100
AXIS_KEYWORDS = frozenset({"dim", "axis", "dims", "keepdim", "axes"})
SHAPE_METHODS = frozenset({"view", "reshape", "transpose", "permute", "size", "unsqueeze", "squeeze", "flatten",
                           "unflatten", "expand", "repeat", "split", "chunk", "narrow", "movedim", "swapaxes",
                           "swapdims", "moveaxis", "expand_dims", "stack", "cat", "concatenate", "softmax",
                           "log_softmax", "argmax", "argmin", "mean", "sum", "norm"})
LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "log"})
GUARD = 1e-5
# Whole words of the scope path or the line (snake_case and dotted parts split; `__init__` says nothing).
CATEGORIES: tuple[tuple[str, int, frozenset[str]], ...] = (
    ("init", 3, frozenset({"init", "std", "bound", "normal", "uniform", "xavier", "kaiming", "gain", "scale"})),
    ("schedule", 3, frozenset({"schedule", "warmup", "warmdown", "cooldown", "multiplier", "progress", "cosine",
                               "anneal"})),
    ("optimiser", 3, frozenset({"optim", "optimizer", "optimizers", "optimiser", "adam", "adamw", "muon", "sgd", "lr",
                                "momentum", "beta", "betas", "eps", "decay", "nesterov", "clip"})),
    ("model", 2, frozenset({"rotary", "rope", "base", "softcap", "cap", "window", "dropout", "ratio", "head", "heads",
                            "attn", "attention", "mlp", "norm", "width", "hidden", "layer", "layers", "embed",
                            "embedding", "logits"})),
)
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Slot:
    """One numeric literal outside the block: where it is, what it holds, and why it is not a site (None: it is)."""

    id: str
    value: int | float
    line: int  # 1-based
    col: int  # UTF-8 byte offsets of the literal (a unary minus included)
    end_col: int
    scope: str
    named: bool
    skip: str | None
    source_line: str

    @property
    def is_site(self) -> bool:
        return self.skip is None

    @property
    def category(self) -> str:
        return _category(self)[0]

    @property
    def score(self) -> int:
        return _category(self)[1] + (2 if isinstance(self.value, float) else 0) + (1 if self.named else 0)

    def shown_line(self) -> str:
        """The source line with this literal marked `[[...]]`, trimmed around it, for prompts and listings."""
        marked = splice(self.source_line, self.col, self.end_col,
                        "[[" + self.source_line.encode()[self.col:self.end_col].decode() + "]]")
        text = marked.strip()
        if len(text) <= MAX_SHOWN_LINE:
            return text
        at = text.find("[[")
        start = max(0, min(at - MAX_SHOWN_LINE // 2, len(text) - MAX_SHOWN_LINE))
        return ("..." if start else "") + text[start:start + MAX_SHOWN_LINE] + "..."

    def describe(self) -> str:
        return f"{self.category}, line {self.line}: {self.shown_line()}"

    def spec(self) -> ParamSpec:
        """The site as a parameter: its id, the block's inferred range for its literal, its line as the description."""
        return infer_spec(self.id, self.value, description=self.describe())


def _category(slot: Slot) -> tuple[str, int]:
    for text in (slot.scope, slot.source_line):
        words = set(_WORD.findall(text.replace("__init__", "").lower()))
        for name, weight, keywords in CATEGORIES:
            if words & keywords:
                return name, weight
    return "other", 0


def _number(node: ast.AST) -> int | float | None:
    """The value of a numeric literal node (a unary minus included); None for anything else (bools included)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand) if isinstance(node.operand, ast.Constant) else None
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value: int | float = node.value  # type: ignore[assignment]
        return value
    return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _scope(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> str:
    names = []
    current: ast.AST | None = node
    while current is not None:
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(current.name)
        current = parents.get(current)
    return ".".join(reversed(names)) or TOP_SCOPE


def _named(node: ast.AST, parent: ast.AST | None) -> bool:
    """A keyword argument, a parameter default, or the whole value of `NAME = literal`."""
    if isinstance(parent, ast.keyword):
        return True
    if isinstance(parent, ast.arguments):
        return node in parent.defaults or node in parent.kw_defaults
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        return all(isinstance(t, ast.Name) for t in targets)
    return False


def _call_name(call: ast.Call) -> tuple[str | None, str | None]:
    """(`module or object name`, `function or method name`) of a call, where they are plain names."""
    func = call.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, None


def _skip_reason(node: ast.AST, value: int | float, parents: Mapping[ast.AST, ast.AST], line_text: str) -> str | None:
    if MARKER in line_text:
        return "marked"
    parent = parents.get(node)
    named = _named(node, parent)
    # The direct context first (through tuples and lists: `dim=(-2, -1)`).
    holder, direct = node, parent
    while isinstance(direct, (ast.Tuple, ast.List)):
        holder, direct = direct, parents.get(direct)
    if isinstance(direct, ast.keyword) and direct.arg in AXIS_KEYWORDS:
        return "axis"
    if isinstance(direct, ast.Call) and holder in direct.args:
        owner, name = _call_name(direct)
        if isinstance(direct.func, ast.Attribute) and name in SHAPE_METHODS and isinstance(value, int):
            return "axis"
        if owner == "math":
            return "math"
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Mod) and parent.right is node:
        return "interval"
    if isinstance(parent, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in parent.ops):
        return "equality"
    # Then any enclosing context up to the statement.
    child, current = node, parent
    while current is not None and not isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                           ast.Module)):
        if isinstance(current, ast.Subscript) and child is current.slice:
            return "index"
        if isinstance(current, ast.JoinedStr):
            return "output"
        if isinstance(current, ast.Call):
            owner, name = _call_name(current)
            if name == "print" and owner is None or name in LOG_METHODS and owner in ("logging", "logger", "log"):
                return "output"
        if isinstance(current, (ast.Assert, ast.Raise)):
            return "check"
        child, current = current, parents.get(current)
    if not named and isinstance(value, float) and 0 < abs(value) < GUARD:
        return "guard"
    if not named and (value in (0, 1, -1) or (isinstance(value, int) and value == 2)):
        return "identity"
    return None


def literal_slots(source: str) -> list[Slot]:
    """Every numeric literal of `source` outside the hyperparameter block, in source order, with its id and, when it
    is not a site, why. ScriptError when the script does not parse or has no block."""
    try:
        tree = parse_python(source)
    except SyntaxError as error:
        raise ScriptError(f"the script does not parse: line {error.lineno}: {error.msg}") from None
    first, last = block_span(source)
    lines = source.splitlines()
    parents = _parents(tree)
    found: list[tuple[str, int, int, ast.AST, int | float]] = []
    for node in ast.walk(tree):
        value = _number(node)
        parent = parents.get(node)
        if value is None or (isinstance(node, ast.Constant) and isinstance(parent, ast.UnaryOp)
                             and _number(parent) is not None):
            continue  # not a number, or the operand of a unary minus (the minus and the number are one literal)
        lineno = node.lineno  # type: ignore[attr-defined]
        if first <= lineno <= last:
            continue
        found.append((_scope(node, parents), lineno, node.col_offset, node, value))  # type: ignore[attr-defined]
    found.sort(key=lambda item: (item[1], item[2]))
    counters: dict[str, int] = {}
    slots = []
    for scope, lineno, col, node, value in found:
        ordinal = counters.get(scope, 0)
        counters[scope] = ordinal + 1
        text = lines[lineno - 1]
        skip = _skip_reason(node, value, parents, text)
        if skip is None and node.end_lineno != lineno:  # type: ignore[attr-defined]
            skip = "spans lines"
        slots.append(Slot(id=f"{scope}{SITE_SEPARATOR}{ordinal}", value=value, line=lineno, col=col,
                          end_col=node.end_col_offset if node.end_lineno == lineno else col,  # type: ignore[attr-defined]
                          scope=scope, named=_named(node, parents.get(node)), skip=skip, source_line=text))
    return slots


def find_sites(source: str, exclude: tuple[str, ...] | frozenset[str] = ()) -> list[Slot]:
    """The sites of `source`, best-ranked first (score, then source order), without the ids in `exclude`."""
    sites = [slot for slot in literal_slots(source) if slot.is_site and slot.id not in exclude]
    return sorted(sites, key=lambda slot: (-slot.score, slot.line, slot.col))


def apply_sites(source: str, changes: Mapping[str, ParamValue]) -> str:
    """`source` with the literals of the named sites rewritten (values already validated); every other byte stays.
    Which ids are searched is the caller's (the search space's) to say: any literal's id is written here, so a source
    whose site was set to, say, 1 (an `identity` value) can be written again. ScriptError when an id names no literal,
    or the rewrite does not read back as intended."""
    by_id = {slot.id: slot for slot in literal_slots(source)}
    missing = sorted(name for name in changes if name not in by_id)
    if missing:
        raise ScriptError(f"no literal site {', '.join(missing)} in the script")
    # A value equal to the literal's own keeps its spelling (`1e-8` stays `1e-8`): diffs show real changes only.
    changes = {name: value for name, value in changes.items()
               if not (same_value(value, by_id[name].value) and type(value) is type(by_id[name].value))}
    lines = source.splitlines(keepends=True)
    # Right to left, so that earlier columns of a line stay valid while later literals of it are rewritten.
    for slot in sorted((by_id[name] for name in changes), key=lambda s: (s.line, s.col), reverse=True):
        lines[slot.line - 1] = splice(lines[slot.line - 1], slot.col, slot.end_col, literal_source(changes[slot.id]))
    rewritten = "".join(lines)
    after = {slot.id: slot for slot in literal_slots(rewritten)}
    if after.keys() != by_id.keys():
        raise ScriptError("rewriting the literal sites changed the script's structure")  # pragma: no cover
    for name, slot in by_id.items():
        expected = changes.get(name, slot.value)
        if not same_value(after[name].value, expected) or type(after[name].value) is not type(expected):
            raise ScriptError(f"{name}: rewrite produced {after[name].value!r}, expected {expected!r}")
    return rewritten
