"""Honest novelty: how close a generated mechanism is to what its prompts showed the model (the reference library,
the worked example, the repair snippets), measured on code shapes that survive renaming."""

from __future__ import annotations

import ast
import copy
import textwrap
from difflib import SequenceMatcher
from functools import lru_cache

from pydantic import BaseModel, Field

from mechanisms.api import HOOK_DOCS

DERIVED_AT = 0.7  # at or above this similarity a sample is an adaptation of its closest reference, never "invented"
# Names kept as they are: the hook API and the trusted helpers are the vocabulary every mechanism shares; renaming
# anything else (classes, methods, state, locals) leaves the shape unchanged.
_MODULES = frozenset({"h", "helpers", "random", "math", "statistics", "collections", "itertools", "heapq", "bisect",
                      "json", "re", "numpy", "np"})
_KEPT_NAMES = frozenset({*HOOK_DOCS, *_MODULES, "self", "ctx", "len", "range", "min", "max",
                         "sum", "sorted", "enumerate", "zip", "abs", "list", "dict", "set", "tuple", "int", "float",
                         "str", "bool", "any", "all", "None", "True", "False", "__init__"})


class Novelty(BaseModel):
    """A sample's closest reference and how close it is: an adaptation (derived) or an invention."""

    closest: str = Field(description="The nearest reference, e.g. `library:one_factor` or `snippet:live_propose`.")
    similarity: float = Field(ge=0.0, le=1.0)
    derived: bool

    @property
    def label(self) -> str:
        if self.derived:
            return f"derived from {self.closest} (similarity {self.similarity:.2f})"
        return f"invented (closest {self.closest}, similarity {self.similarity:.2f})"


class _Normaliser(ast.NodeTransformer):
    """Docstrings dropped; names other than the shared vocabulary renamed by order of first use; strings and
    numbers abstracted. What is left is the shape of the code."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name in _KEPT_NAMES:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._rename(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        # a module's function (h.neighbour, random.Random) keeps its name; anything of an object (self's state,
        # a local's method) is renamed, so `self.tried` and `h.tried` are not confused
        of_module = isinstance(node.value, ast.Name) and node.value.id in _MODULES
        self.generic_visit(node)
        if not of_module and node.attr not in HOOK_DOCS:
            node.attr = self.names.setdefault(node.attr, f"v{len(self.names)}")
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        kind = "S" if isinstance(node.value, str) else "N" if isinstance(node.value, int | float) else node.value
        return ast.copy_location(ast.Constant(value=kind), node)

    def _named(self, node: ast.FunctionDef | ast.ClassDef) -> ast.AST:
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None),
                                                                            ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        node.name = self._rename(node.name)
        self.generic_visit(node)
        return node

    visit_FunctionDef = _named  # type: ignore[assignment]
    visit_ClassDef = _named  # type: ignore[assignment]


def _tokens(node: ast.AST) -> tuple[str, ...]:
    """Node types in depth-first order, with the (normalised) names, operators and constants they carry; load/store
    contexts are left out (they follow from the structure)."""
    out: list[str] = []

    def walk(item: ast.AST) -> None:
        if isinstance(item, ast.expr_context):
            return
        label = type(item).__name__
        for field in ("id", "attr", "arg", "name", "value"):
            value = getattr(item, field, None)
            if isinstance(value, str):
                label += f":{value}"
        out.append(label)
        for child in ast.iter_child_nodes(item):
            walk(child)

    walk(node)
    return tuple(out)


def _normalised(node: ast.AST) -> ast.AST:
    return _Normaliser().visit(copy.deepcopy(node))


@lru_cache(maxsize=256)
def shape(source: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The normalised token shape of a whole source, and of each of its functions (by original name, each numbered
    on its own so that a copied method matches wherever it sits). A source that does not parse has an empty shape
    (it cannot be compared, so it is nobody's copy)."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return (), {}
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    return _tokens(_normalised(tree)), {name: _tokens(_normalised(node)) for name, node in functions.items()}


def _ratio(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0


def similarity(sample: str, reference: str) -> float:
    """How much of `sample` is `reference` in another form, in [0, 1]: the larger of the whole-source similarity and
    the share of the sample's function code that matches some reference function (so a class that wraps a copied
    hook in a new name, or copies a snippet into a bigger body, is still recognised)."""
    whole_a, funcs_a = shape(sample)
    whole_b, funcs_b = shape(reference)
    whole = _ratio(whole_a, whole_b)
    total = sum(len(tokens) for tokens in funcs_a.values())
    if not total or not funcs_b:
        return round(whole, 4)
    matched = sum(len(tokens) * max(_ratio(tokens, ref) for ref in funcs_b.values()) for tokens in funcs_a.values())
    return round(max(whole, matched / total), 4)


@lru_cache(maxsize=1)
def default_references() -> tuple[tuple[str, str], ...]:
    """What the Level-2 prompts show a model: every reference mechanism (each may be the worked example) and the
    repair snippets."""
    from mechanisms.library import list_library
    from search.research import LIVE_PROPOSE

    return (*((f"library:{entry.name}", entry.source) for entry in list_library()),
            ("snippet:live_propose", LIVE_PROPOSE))


def assess(source: str, references: tuple[tuple[str, str], ...] | None = None,
           derived_at: float = DERIVED_AT, parent: tuple[str, str] | None = None) -> Novelty:
    """The closest reference of a sample and whether the sample is an adaptation of it. A mutant (`parent`: its
    parent's label and source) is an adaptation of its parent whatever the similarity: it was asked to change one
    thing in that code, so it is never called new."""
    if parent is not None:
        return Novelty(closest=parent[0], similarity=similarity(source, parent[1]), derived=True)
    pool = references if references is not None else default_references()
    if not pool:
        return Novelty(closest="none", similarity=0.0, derived=False)
    scored = [(similarity(source, text), name) for name, text in pool]
    best, name = max(scored)
    return Novelty(closest=name, similarity=best, derived=best >= derived_at)
