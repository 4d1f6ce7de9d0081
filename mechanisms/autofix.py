"""Mechanical fixes of the mistakes a small model makes most (a linter's --fix for generated mechanisms).

Each fix is unambiguous and local: a key of ctx or result that does not exist but has one obvious meaning
(`ctx["best_config"]` -> `ctx["best"]["config"]`), a helper called as a method (`self.untried(ctx)` ->
`h.untried(ctx)`) or bare (`untried(ctx)`), and a loop over the parameter dicts where names were meant
(`for name in ctx["params"]` -> `for name in h.editable(ctx)`), and imports: `from helpers import h` ->
`import helpers as h`, and a module used but never imported (h, random, math, collections) gets its import; a base
class is dropped (`class M(Base):` -> `class M:`); a mutant first gets back the constants, imports and methods of
its parent that it dropped (mechanisms/parent_restore.py). The fixed code is a new sample that goes through every validation stage like any other; nothing here executes the code.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from mechanisms import helpers
from mechanisms.parent_restore import restore_from_parent
from mechanisms.static_check import CTX_KEYS, CTX_SYNONYMS, HOOK_ARGUMENTS, result_keys, result_synonyms
from search.pyast import parse_python

PARAMS_AS_NAMES = "h.editable(ctx)"


@dataclass(frozen=True)
class Edit:
    line: int  # 1-based
    start: int  # character offsets within the line
    end: int
    text: str
    why: str


def autofix(source: str, metric_name: str | None = None, parent_source: str | None = None,
            parent_label: str = "") -> tuple[str, list[str]] | None:
    """(fixed source, what was fixed) or None when nothing applies (or the code does not parse). A mutant's
    `parent_source` (labelled `parent_label`) first gets back what the mutant dropped from it (parent_restore.py)."""
    restored: list[str] = []
    if parent_source is not None:
        source, restored = restore_from_parent(source, parent_source, parent_label or "mechanism")
    try:
        tree = parse_python(source, filename="<mechanism>")
    except SyntaxError:
        return None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if len(classes) != 1:
        return None
    lines = source.splitlines(keepends=True)
    edits = [*_key_edits(classes[0], lines, metric_name), *_helper_edits(tree, classes[0], lines),
             *_base_edits(classes[0], lines)]
    edits = _non_overlapping(edits)
    for edit in sorted(edits, key=lambda e: (e.line, e.start), reverse=True):
        line = lines[edit.line - 1]
        lines[edit.line - 1] = line[:edit.start] + edit.text + line[edit.end:]
    fixed, imported = _fix_imports("".join(lines))
    why = restored + sorted({e.why for e in edits}) + imported
    return (fixed, why) if why else None


def _fix_imports(source: str) -> tuple[str, list[str]]:
    """The helpers imported under another path (`from helpers import h`, `import mechanisms.helpers as h`) become
    `import helpers as h`, and a module the code uses but never imports (h, random, math, collections) is imported.
    A mutant of a library mechanism loses its import lines more often than anything else (the yield run at 6e129d2:
    5 of 8 mutants were refused at the policy stage for `helpers.h`, an undefined `h`, `random` or `math`)."""
    try:
        tree = parse_python(source, filename="<mechanism>")
    except SyntaxError:
        return source, []
    lines = source.splitlines(keepends=True)
    why = []
    for node in sorted((n for n in tree.body if _imports_h_wrongly(n)), key=lambda n: n.lineno, reverse=True):
        rest = [a for a in node.names if (a.asname or a.name) != "h"]  # type: ignore[attr-defined]
        text = "import helpers as h\n"
        if rest and isinstance(node, ast.ImportFrom) and node.module == "helpers":
            text += f"from helpers import {', '.join(a.name + (f' as {a.asname}' if a.asname else '') for a in rest)}\n"
        lines[node.lineno - 1:node.end_lineno] = [text]  # type: ignore[attr-defined]
        why.append(f"`{ast.unparse(node)}` became `import helpers as h`")
    fixed = "".join(lines)
    missing = _unbound_modules(parse_python(fixed, filename="<mechanism>"))
    if missing:
        fixed = _after_docstring(fixed, "".join(f"{MODULE_IMPORTS[name]}\n" for name in missing))
        why.append(f"added the missing import(s): {'; '.join(MODULE_IMPORTS[name] for name in missing)}")
    return fixed, why


def _after_docstring(source: str, text: str) -> str:
    """`text` inserted after the module docstring (before it, the docstring would be a stray statement that the
    policy refuses), else at the top."""
    body = parse_python(source, filename="<mechanism>").body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = source.splitlines(keepends=True)
        end = first.end_lineno or first.lineno
        return "".join(lines[:end]) + text + "".join(lines[end:])
    return text + source


# What a bare use of each name needs imported (the prompts' rule: imports only random, math, collections, helpers).
MODULE_IMPORTS = {"h": "import helpers as h", "random": "import random", "math": "import math",
                  "collections": "import collections"}


def _imports_h_wrongly(node: ast.stmt) -> bool:
    """An import that binds `h` to something other than `import helpers as h` (the one form the policy allows)."""
    if isinstance(node, ast.ImportFrom):
        return any((a.asname or a.name) == "h" for a in node.names)
    if isinstance(node, ast.Import):
        return any(a.asname == "h" and a.name != "helpers" for a in node.names)
    return False


def _unbound_modules(tree: ast.Module) -> list[str]:
    """The names of MODULE_IMPORTS the code reads but never binds (no import, assignment, argument or definition)."""
    bound = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.ExceptHandler))
              and n.name}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [name for name in MODULE_IMPORTS if name in used and name not in bound]


def _columns(lines: list[str], node: ast.AST) -> tuple[int, int] | None:
    """Character columns of a node that sits on one line (ast gives UTF-8 byte offsets)."""
    if node.lineno != node.end_lineno:  # type: ignore[attr-defined]
        return None
    raw = lines[node.lineno - 1].encode()  # type: ignore[attr-defined]
    start = len(raw[:node.col_offset].decode(errors="replace"))  # type: ignore[attr-defined]
    end = len(raw[:node.end_col_offset].decode(errors="replace"))  # type: ignore[attr-defined]
    return start, end


def _key_edits(cls: ast.ClassDef, lines: list[str], metric_name: str | None) -> list[Edit]:
    """`ctx["best_config"]` -> `ctx["best"]["config"]`, `result["score"]` -> `result["value"]`, and loops over the
    parameter dicts -> loops over the editable names."""
    edits = []
    extra = {metric_name} if metric_name else set()
    for method in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in HOOK_ARGUMENTS):
        roles = dict(zip([a.arg for a in method.args.args][1:], HOOK_ARGUMENTS[method.name]))
        for node in ast.walk(method):
            if isinstance(node, ast.For) and _is_ctx_key(node.iter, roles, "params") and isinstance(node.target, ast.Name):
                where = _columns(lines, node.iter)
                if where:
                    edits.append(Edit(node.iter.lineno, *where, PARAMS_AS_NAMES,
                                      'loops over ctx["params"] (dicts) now loop over h.editable(ctx) (names)'))
            if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                continue
            role, key = roles.get(node.value.id), node.slice.value
            replacement = None
            if role == "ctx" and key not in CTX_KEYS:
                replacement = CTX_SYNONYMS.get(key) or _closest(key, CTX_KEYS)
            elif role == "result" and key not in result_keys(method.name) | extra:
                replacement = _closest(result_synonyms(method.name).get(key, key), result_keys(method.name))
            if replacement is None:
                continue
            where = _columns(lines, node)
            if where is None:
                continue
            name_end = where[0] + len(node.value.id)
            edits.append(Edit(node.lineno, name_end, where[1], replacement,
                              f"{node.value.id}[{key!r}] (no such key) became {node.value.id}{replacement}"))
    return edits


def _is_ctx_key(node: ast.AST, roles: dict[str, str], key: str) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and roles.get(node.value.id) == "ctx"
            and isinstance(node.slice, ast.Constant) and node.slice.value == key)


def _closest(key: str, keys: frozenset[str]) -> str | None:
    """The one existing key a misspelt key clearly means, as a subscript text."""
    if key in keys:
        return f"[{key!r}]".replace("'", '"')
    match = difflib.get_close_matches(key, sorted(keys), n=2, cutoff=0.75)
    return f'["{match[0]}"]' if len(match) == 1 else None


def _helper_edits(tree: ast.Module, cls: ast.ClassDef, lines: list[str]) -> list[Edit]:
    """`self.untried(ctx)` -> `h.untried(ctx)` when the class defines no `untried`; a bare `untried(ctx)` that is
    not defined anywhere -> `h.untried(ctx)`."""
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.For))
                for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target) if isinstance(t, ast.Name)}
    defined |= {a.asname or a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    attributes = {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                  and n.value.id == "self" and isinstance(n.ctx, ast.Store)}
    edits = []
    for node in ast.walk(cls):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
                and func.attr in helpers.__all__ and func.attr not in defined | attributes):
            where = _columns(lines, func)
            if where:
                edits.append(Edit(func.lineno, where[0], where[1], f"h.{func.attr}",
                                  f"self.{func.attr}(...) (no such method) became the helper h.{func.attr}(...)"))
        elif isinstance(func, ast.Name) and func.id in helpers.__all__ and func.id not in defined:
            where = _columns(lines, func)
            if where:
                edits.append(Edit(func.lineno, where[0], where[1], f"h.{func.id}",
                                  f"{func.id}(...) (undefined) became the helper h.{func.id}(...)"))
    return edits


def _base_edits(cls: ast.ClassDef, lines: list[str]) -> list[Edit]:
    """`class M(Base):` -> `class M:` (a mechanism inherits from nothing; the base is usually a made-up name)."""
    if not (cls.bases or cls.keywords):
        return []
    match = re.match(rf"(\s*class\s+{cls.name})\s*\([^()]*\)\s*:", lines[cls.lineno - 1])
    if match is None:
        return []
    return [Edit(cls.lineno, len(match.group(1)), match.end(), ":",
                 f"class {cls.name}({', '.join(ast.unparse(b) for b in cls.bases)}) became class {cls.name}: (no base)")]


def _non_overlapping(edits: list[Edit]) -> list[Edit]:
    kept: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e.line, e.start, -e.end)):
        if any(k.line == edit.line and k.start < edit.end and edit.start < k.end for k in kept):
            continue
        kept.append(edit)
    return kept


__all__ = ["autofix"]
