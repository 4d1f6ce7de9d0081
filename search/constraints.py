"""Cross-parameter constraints (`# constraint: EXPR` in a hyperparameter block), checked by a small AST interpreter.

EXPR may use parameter names, numbers, strings, True/False, + - * / // % **, comparisons (chained too),
and/or/not and parentheses. Nothing else: no calls, attributes or subscripts. It is never passed to eval.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from search.pyast import parse_python

MAX_EXPRESSION_CHARS = 300
MAX_DEPTH = 24
MAX_EXPONENT = 64
MAX_MAGNITUDE = 1e300

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


class ConstraintError(ValueError):
    """A constraint that cannot be parsed or evaluated; the message says where."""


class Constraint(BaseModel):
    """One declared constraint: its text, and the parameters it reads."""

    model_config = ConfigDict(frozen=True)

    text: str
    names: tuple[str, ...]

    def holds(self, config: Mapping[str, Any]) -> bool:
        """Whether `config` satisfies the constraint; ConstraintError when it cannot be evaluated."""
        missing = [name for name in self.names if name not in config]
        if missing:
            raise ConstraintError(f"constraint `{self.text}` needs {', '.join(missing)}")
        return bool(_evaluate(_tree(self.text), config, 0))

    def explain(self, config: Mapping[str, Any]) -> str:
        """`EXPR is false for A=1, B=2`: the message a refused proposal carries back to the LLM."""
        values = ", ".join(f"{name}={config.get(name)!r}" for name in self.names)
        return f"the constraint `{self.text}` is false for {values}"


def parse_constraint(text: str, known: Iterable[str]) -> Constraint:
    """A checked constraint over the `known` parameter names; ConstraintError names what is wrong."""
    text = text.strip()
    if not text:
        raise ConstraintError("empty constraint")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConstraintError(f"constraint is {len(text)} characters long; the limit is {MAX_EXPRESSION_CHARS}")
    tree = _tree(text)
    names = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)})
    unknown = [name for name in names if name not in set(known)]
    if unknown:
        raise ConstraintError(f"constraint `{text}` names unknown parameters: {', '.join(unknown)}")
    return Constraint(text=text, names=tuple(names))


def violations(constraints: Iterable[Constraint], config: Mapping[str, Any]) -> list[str]:
    """The explanation of every constraint `config` breaks (an unevaluable one counts as broken)."""
    broken = []
    for constraint in constraints:
        try:
            if not constraint.holds(config):
                broken.append(constraint.explain(config))
        except ConstraintError as error:
            broken.append(str(error))
    return broken


@functools.lru_cache(maxsize=512)
def _tree(text: str) -> ast.expr:
    try:
        module = parse_python(text, filename="<constraint>")
    except SyntaxError as error:
        raise ConstraintError(f"constraint `{text}` is not an expression: {error.msg}") from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Expr):
        raise ConstraintError(f"constraint `{text}` must be one expression")
    expression = module.body[0].value
    _check(expression, text, 0)
    return expression


def _check(node: ast.AST, text: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConstraintError(f"constraint `{text}` is nested too deeply")
    allowed = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name, ast.Constant, ast.Load,
               ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, *_BINARY, *_COMPARE)
    if not isinstance(node, allowed):
        raise ConstraintError(f"constraint `{text}` uses {type(node).__name__}; only names, numbers, arithmetic, "
                              "comparisons and and/or/not are allowed")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
        raise ConstraintError(f"constraint `{text}` has a constant of type {type(node.value).__name__}")
    for child in ast.iter_child_nodes(node):
        _check(child, text, depth + 1)


def _evaluate(node: ast.expr, config: Mapping[str, Any], depth: int) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        value = config[node.id]
        return tuple(value) if isinstance(value, list) else value
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, config, depth + 1)
        if isinstance(node.op, ast.Not):
            return not operand
        return _number(-operand if isinstance(node.op, ast.USub) else +operand)
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, config, depth + 1) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, config, depth + 1), _evaluate(node.right, config, depth + 1)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            raise ConstraintError(f"`{_SYMBOLS[type(node.op)]}` needs numbers, got {left!r} and {right!r}")
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ConstraintError(f"exponent {right!r} is larger than {MAX_EXPONENT}")
        try:
            return _number(_BINARY[type(node.op)](left, right))
        except (ZeroDivisionError, OverflowError) as error:
            raise ConstraintError(f"{left!r} {_SYMBOLS[type(node.op)]} {right!r}: {error}") from None
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, config, depth + 1)
        for op, comparator in zip(node.ops, node.comparators):
            right = _evaluate(comparator, config, depth + 1)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                raise ConstraintError(f"cannot compare {left!r} with {right!r}") from None
            left = right
        return True
    raise ConstraintError(f"unsupported syntax {type(node).__name__}")  # pragma: no cover - _check refuses it


def _number(value: Any) -> Any:
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        raise ConstraintError(f"the arithmetic gave {value!r}")
    if isinstance(value, (int, float)) and abs(value) > MAX_MAGNITUDE:
        raise ConstraintError("the arithmetic gave a number too large to compare")
    return value
