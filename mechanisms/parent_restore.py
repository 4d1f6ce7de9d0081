"""What a mutant dropped from its parent, put back from the parent's source (AST only; nothing is executed).

A mutant is its parent plus one change, yet the small model often drops a name of the parent that its code still uses:
in the yield run at c43e9e5 a module-level constant (`TENURE` once, `EXPLORATION` three times), and a subclass of the
parent (`class M(ParameterBandit):` with `super().__init__()`) that relied on the parent's methods and state. Restored:
the parent's module-level constants (simple assignments) and imports that the mutant reads but never binds; the
parent's methods and class attributes the mutant reads as `self.m` but does not define (for a subclass of the parent,
also the hooks it does not override); and a subclass's `super().__init__()` becomes the parent's `__init__` body. Nothing the mutant defines
itself (anywhere: a module constant, a local, an argument, a method, an attribute it assigns) is replaced.
"""

from __future__ import annotations

import ast
import textwrap

from mechanisms.static_check import HOOK_ARGUMENTS
from search.pyast import parse_python


def restore_from_parent(source: str, parent_source: str, parent_label: str) -> tuple[str, list[str]]:
    """(source with what it dropped from the parent restored, what was restored); the source unchanged and [] when
    nothing applies or either text does not parse."""
    try:
        tree, parent = parse_python(source, "<mechanism>"), parse_python(parent_source, "<parent>")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source, []
    cls, parent_cls = _one_class(tree), _one_class(parent)
    why: list[str] = []
    if cls is not None and parent_cls is not None:
        source, why = _restore_members(source, cls, parent_source, parent_cls, parent_label)
        try:
            tree = parse_python(source, "<mechanism>")
        except SyntaxError:  # an odd layout (e.g. a class body on its header line): give up rather than guess
            return source, []
    source, more = _restore_module_names(source, tree, parent_source, parent, parent_label)
    return source, why + more


def _one_class(tree: ast.Module) -> ast.ClassDef | None:
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    return classes[0] if len(classes) == 1 else None


def _bound(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere: imports, assignments and loop targets, arguments, definitions."""
    names = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    names |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    names |= {n.name for n in ast.walk(tree)
              if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)) and n.name}
    return names


def _read(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _self_reads(tree: ast.AST) -> set[str]:
    """The attributes read as `self.x` (method calls included)."""
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "self" and isinstance(n.ctx, ast.Load)}


def _class_members(cls: ast.ClassDef) -> dict[str, ast.stmt]:
    """Methods and class-level assignments of one name, by name."""
    members: dict[str, ast.stmt] = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members[node.name] = node
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            members[node.targets[0].id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            members[node.target.id] = node
    return members


def _defined_in_class(cls: ast.ClassDef) -> set[str]:
    """What the class defines: its members and every attribute it assigns as `self.x`."""
    return set(_class_members(cls)) | {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                                       and isinstance(n.value, ast.Name) and n.value.id == "self"
                                       and not isinstance(n.ctx, ast.Load)}


def _is_super_init(node: ast.stmt) -> bool:
    """`super().__init__()` as a statement of its own."""
    call = node.value if isinstance(node, ast.Expr) else None
    return (isinstance(call, ast.Call) and not call.args and not call.keywords
            and isinstance(call.func, ast.Attribute) and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call) and isinstance(call.func.value.func, ast.Name)
            and call.func.value.func.id == "super" and not call.func.value.args)


def _statement_text(lines: list[str], node: ast.stmt, indent: str) -> str:
    """The whole lines of a statement (decorators and trailing comment included), re-indented."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    text = textwrap.dedent("".join(lines[first - 1:node.end_lineno]))
    return textwrap.indent(text if text.endswith("\n") else text + "\n", indent)


def _restore_members(source: str, cls: ast.ClassDef, parent_source: str, parent_cls: ast.ClassDef,
                     label: str) -> tuple[str, list[str]]:
    """The parent's methods and class attributes the mutant reads as `self.m` without defining them (and, for a
    subclass of the parent, the `__init__` and hooks it does not override), then what those read in turn; a subclass's
    `super().__init__()` inlined. Unused members of the parent stay out: they would be dead code the checks read."""
    members = _class_members(parent_cls)
    defined = _defined_in_class(cls)
    subclass = any(isinstance(base, ast.Name) and base.id == parent_cls.name for base in cls.bases)
    inherited = {"__init__", *HOOK_ARGUMENTS} if subclass else set()  # what runs without the subclass naming it
    wanted = (_self_reads(cls) | inherited) & set(members) - defined - {"name"}
    pending = list(wanted)
    while pending:  # what the restored methods use of the parent's class in turn
        for name in _self_reads(members[pending.pop()]) & set(members) - defined - wanted:
            wanted.add(name)
            pending.append(name)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    super_calls = [s for s in (init.body if init is not None and subclass else []) if _is_super_init(s)]
    if not wanted and not super_calls:
        return source, []
    lines = source.splitlines(keepends=True)
    parent_lines = parent_source.splitlines(keepends=True)
    body_indent = _indent_of(lines, cls.body[0])
    why = []
    if wanted:
        ordered = [node for name, node in members.items() if name in wanted]  # the parent's order
        block = "".join("\n" + _statement_text(parent_lines, node, body_indent) for node in ordered)
        end = cls.end_lineno or len(lines)
        if end == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines[end:end] = [block]
        why.append(f"restored {', '.join(sorted(wanted))} from the parent {label}")
    parent_init = members.get("__init__")
    for call in reversed(super_calls):
        body = [s for s in getattr(parent_init, "body", []) if not _is_docstring(s)]
        indent = _indent_of(lines, call)
        text = "".join(_statement_text(parent_lines, s, indent) for s in body) or f"{indent}pass\n"
        lines[call.lineno - 1:call.end_lineno] = [text]
    if super_calls:
        why.append(f"super().__init__() became the body of the parent {label}'s __init__")
    return "".join(lines), why


def _indent_of(lines: list[str], node: ast.stmt) -> str:
    line = lines[node.lineno - 1]
    return line[:len(line) - len(line.lstrip())]


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _restore_module_names(source: str, tree: ast.Module, parent_source: str, parent: ast.Module,
                          label: str) -> tuple[str, list[str]]:
    """The parent's module-level constants and imports the mutant reads but never binds (and the constants those
    constants read), inserted before the class."""
    provided: dict[str, tuple[ast.stmt, ast.alias | None]] = {}
    for node in parent.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for item in node.names:
                if item.name != "*":
                    provided.setdefault(item.asname or item.name.split(".")[0], (node, item))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            provided.setdefault(node.targets[0].id, (node, None))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            provided.setdefault(node.target.id, (node, None))
    bound = _bound(tree)
    wanted = (_read(tree) - bound) & set(provided)
    pending = list(wanted)
    while pending:  # a constant defined from another constant
        node, alias = provided[pending.pop()]
        if alias is not None:
            continue
        for name in (_read(node) - bound - wanted) & set(provided):
            wanted.add(name)
            pending.append(name)
    if not wanted:
        return source, []
    parent_lines = parent_source.splitlines(keepends=True)
    imports: list[str] = []
    constants: list[str] = []
    why: list[str] = []
    for name, (node, alias) in provided.items():  # the parent's order
        if name not in wanted:
            continue
        if alias is None:
            constants.append(_statement_text(parent_lines, node, ""))
            why.append(f"restored {name} from the parent {label}")
        else:
            text = ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=node.level)
                               if isinstance(node, ast.ImportFrom) else ast.Import(names=[alias]))
            imports.append(text + "\n")
            why.append(f"restored `{text}` from the parent {label}")
    lines = source.splitlines(keepends=True)
    first_class = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    at = (min([first_class.lineno, *(d.lineno for d in first_class.decorator_list)]) - 1 if first_class is not None
          else len(lines))
    if at == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines[at:at] = ["\n".join(part for part in ("".join(imports), "".join(constants)) if part) + "\n\n"]
    return "".join(lines), why


__all__ = ["restore_from_parent"]
