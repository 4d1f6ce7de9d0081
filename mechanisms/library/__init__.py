"""Reference mechanisms: small readable baselines and worked examples for Level 2.

The mechanism files here are untrusted-style source: they are read as text and run only in the
sandbox, like generated ones. Never import them as Python modules.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from search.pyast import parse_python

LIBRARY_FILES = ("tabu.py", "bandit.py", "doe.py", "annealing.py", "novelty.py", "screening.py")
# Mechanisms that act once per parameter and then never again (one_factor proposes each untried parameter once): on a
# trace whose proposer already moved every parameter they change nothing. Their simulated effect was exactly 0 at 9 of
# 13 development cuts (benchmarks/results/level2-shapes), and the local model imitates the worked example it is
# shown, so these are neither the worked example nor a mutation parent. They stay references (novelty, arm library).
ONE_SHOT = ("one_factor",)


@dataclass(frozen=True)
class LibraryEntry:
    """One reference mechanism: its declared name, class, one-line description and source text."""

    name: str
    class_name: str
    description: str
    source: str
    filename: str


def list_library() -> list[LibraryEntry]:
    """Every reference mechanism, read as text and described from its AST (nothing is executed)."""
    return [_entry(filename) for filename in LIBRARY_FILES]


def model_entries() -> list[LibraryEntry]:
    """The reference mechanisms Level 2 may show as a worked example or mutate: every one that keeps acting."""
    return [entry for entry in list_library() if entry.name not in ONE_SHOT]


def library_source(name: str) -> str:
    """The source of the reference mechanism declared as `name`; KeyError lists the known names."""
    entries = {entry.name: entry for entry in list_library()}
    if name not in entries:
        raise KeyError(f"no reference mechanism named {name!r}; known: {', '.join(sorted(entries))}")
    return entries[name].source


def _entry(filename: str) -> LibraryEntry:
    source = Path(__file__).with_name(filename).read_text(encoding="utf-8")
    tree = parse_python(source)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if len(classes) != 1:
        raise ValueError(f"library file {filename} must define exactly one class")
    cls = classes[0]
    docstring = ast.get_docstring(cls) or ast.get_docstring(tree) or ""
    return LibraryEntry(
        name=_declared_name(cls) or cls.name,
        class_name=cls.name,
        description=docstring.strip().splitlines()[0] if docstring.strip() else "",
        source=source,
        filename=filename,
    )


def _declared_name(cls: ast.ClassDef) -> str | None:
    for node in cls.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "name" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None
