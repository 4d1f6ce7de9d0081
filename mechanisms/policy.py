"""Static policy for untrusted mechanism source: an AST check that reports every violation with its line.

This module imports the standard library only: the sandbox worker loads it by file path (it never
imports our packages) and runs the same check again before executing any mechanism.

The policy is one layer of two. It keeps the mechanism language small (one class, allowlisted
imports, no dunders, no reflection, no I/O), and the worker's process limits contain whatever slips
through. Messages are written for an LLM that has to repair the code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

try:
    from search.pyast import parse_python
except ModuleNotFoundError:  # inside the sandbox worker: our packages are not importable, and it is single-threaded
    def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
        return ast.parse(source, filename=filename, mode="exec")

ALLOWED_IMPORTS = frozenset(
    {
        "__future__",  # `from __future__ import annotations` is a compiler directive, harmless
        "math",
        "random",
        "statistics",
        "collections",
        "itertools",
        "functools",
        "heapq",
        "bisect",
        "json",
        "dataclasses",
        "typing",
        "re",
        "numpy",
        "helpers",  # our trusted pure helpers (mechanisms/helpers.py), loaded by the worker from its file
    }
)

# Builtins that reach outside the mechanism (files, code execution, reflection) or would let it
# rewrite objects by name. `type` is here because type(name, bases, dict) builds classes dynamically.
FORBIDDEN_NAMES = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "breakpoint",
        "input",
        "memoryview",
        "type",
        "help",
        "exit",
        "quit",
        "dir",
        "copyright",
        "credits",
        "license",
        # modules that are never importable here; named for a clearer message than a NameError
        "os",
        "sys",
        "subprocess",
        "socket",
        "builtins",
        "importlib",
        "ctypes",
        "gc",
        "inspect",
        "pickle",
        "marshal",
    }
)

# Attributes that reach frames, code objects, raw memory or files, whatever object they are read from.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "f_trace",
        "tb_frame",
        "tb_next",
        "co_code",
        "co_consts",
        "co_names",
        "ctypes",
        "ctypeslib",
        "as_strided",
        "tofile",
        "dump",
        "memmap",
    }
)

# numpy functions that read or write files (np.load also unpickles) or expose its internals.
FORBIDDEN_NUMPY_ATTRIBUTES = frozenset(
    {
        "load",
        "save",
        "savez",
        "savez_compressed",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromfile",
        "fromregex",
        "memmap",
        "DataSource",
        "ctypeslib",
        "lib",
        "f2py",
        "testing",
        "distutils",
    }
)

# Calls allowed in a module-level constant, e.g. NAMES = frozenset({"DEPTH", "WIDTH"}).
CONSTANT_CALLS = frozenset({"frozenset", "tuple", "dict", "set", "list", "float", "int", "str"})
ALLOWED_DUNDERS = frozenset({"__init__"})
BLOCK_NODES = (
    ast.ClassDef,
    ast.FunctionDef,
    ast.For,
    ast.While,
    ast.If,
    ast.With,
    ast.Try,
    getattr(ast, "TryStar", ast.Try),
    ast.Match,
)
ASYNC_NODES = (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await)
MAX_VIOLATIONS = 40


@dataclass(frozen=True)
class PolicyLimits:
    """Size limits of a mechanism: small classes compile and pass far more often (DESIGN §11)."""

    max_chars: int = 20_000
    max_lines: int = 400
    max_block_nesting: int = 8
    max_expression_depth: int = 40
    max_nodes: int = 8_000


@dataclass(frozen=True)
class Violation:
    """One broken rule, where it is, and what to do instead."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class PolicyReport:
    """The outcome of a policy check: every violation found (capped), and the mechanism class if there is one."""

    violations: tuple[Violation, ...] = ()
    class_name: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, limit: int = 10) -> str:
        """The violations as short lines, for logs and for the LLM that has to repair the code."""
        lines = [str(v) for v in self.violations[:limit]]
        hidden = len(self.violations) - len(lines)
        if hidden > 0 or self.truncated:
            lines.append(f"... and {max(hidden, 0)} more" + (" (check stopped early)" if self.truncated else ""))
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "class_name": self.class_name,
            "violations": [{"line": v.line, "rule": v.rule, "message": v.message} for v in self.violations],
        }


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def check_source(source: str, limits: PolicyLimits | None = None) -> PolicyReport:
    """Check mechanism source against the policy. Never executes it; never raises for bad input."""
    limits = limits or PolicyLimits()
    if not isinstance(source, str):
        return PolicyReport((Violation(0, "type", f"the source must be text, got {type(source).__name__}"),))
    if len(source) > limits.max_chars:
        return PolicyReport((Violation(0, "size", f"the source has {len(source)} characters; the limit is {limits.max_chars}: write a smaller class"),))
    line_count = source.count("\n") + 1
    if line_count > limits.max_lines:
        return PolicyReport((Violation(0, "size", f"the source has {line_count} lines; the limit is {limits.max_lines}: write a smaller class"),))
    if "\x00" in source:
        return PolicyReport((Violation(0, "syntax", "the source contains a NUL character"),))
    try:
        tree = parse_python(source, filename="<mechanism>")
    except SyntaxError as error:
        text = (error.text or "").strip()[:120]
        quoted = f" in `{text}`" if text else ""
        return PolicyReport((Violation(error.lineno or 0, "syntax", f"syntax error{quoted}: {error.msg}"),))
    except (ValueError, RecursionError, MemoryError) as error:
        return PolicyReport((Violation(0, "syntax", f"the source cannot be parsed: {type(error).__name__}"),))
    checker = _Checker(limits)
    checker.check(tree)
    ordered = sorted(set(checker.violations), key=lambda v: (v.line, v.rule, v.message))
    return PolicyReport(tuple(ordered[:MAX_VIOLATIONS]), checker.class_name, truncated=len(ordered) > MAX_VIOLATIONS)


@dataclass
class _Checker:
    limits: PolicyLimits
    violations: list[Violation] = field(default_factory=list)
    class_name: str | None = None
    module_aliases: dict[str, str] = field(default_factory=dict)  # local name -> imported module path

    def add(self, node: ast.AST | None, rule: str, message: str) -> None:
        self.violations.append(Violation(getattr(node, "lineno", 0) or 0, rule, message))

    def check(self, tree: ast.Module) -> None:
        if not self._within_size(tree):
            return
        self._collect_module_aliases(tree)
        self._check_top_level(tree)
        self._check_nesting(tree)
        for node in ast.walk(tree):
            self._check_node(node)

    def _collect_module_aliases(self, tree: ast.Module) -> None:
        """Local names bound by imports anywhere in the source, so attribute checks know what is a module."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b
                    bound, target = (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
                    self.module_aliases[bound] = target
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.module_aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    # -- shape ------------------------------------------------------------------------------

    def _within_size(self, tree: ast.Module) -> bool:
        """Node count and expression depth, walked iteratively so a deep tree cannot overflow our stack."""
        count = 0
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > self.limits.max_nodes:
                self.add(None, "size", f"the code has more than {self.limits.max_nodes} syntax nodes: write a smaller class")
                return False
            if depth > self.limits.max_expression_depth:
                self.add(node, "size", f"an expression or statement is nested deeper than {self.limits.max_expression_depth} levels: simplify it")
                return False
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        return True

    def _check_nesting(self, tree: ast.Module) -> None:
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, BLOCK_NODES):
                depth += 1
                if depth > self.limits.max_block_nesting:
                    self.add(node, "nesting", f"blocks are nested {depth} deep; the limit is {self.limits.max_block_nesting}: move inner logic into a helper method")
                    continue
            stack.extend((child, depth) for child in ast.iter_child_nodes(node))

    def _check_top_level(self, tree: ast.Module) -> None:
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        for position, node in enumerate(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
                continue
            if position == 0 and _is_docstring(node):
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_constant_assignment(node):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.add(node, "top-level", f"function {node.name!r} is defined at module level: make it a method (or @staticmethod) of the class")
                continue
            self.add(node, "top-level", "only imports, constant assignments and one class may appear at module level; move this code into a method")
        if len(classes) != 1:
            names = ", ".join(c.name for c in classes) or "none"
            self.add(classes[1] if len(classes) > 1 else None, "class", f"the source must define exactly one top-level class, found {len(classes)} ({names})")
            return
        mechanism = classes[0]
        self.class_name = mechanism.name
        if mechanism.keywords:
            self.add(mechanism, "class", "the mechanism class may not take keywords such as metaclass=")
        for base in mechanism.bases:
            if not (isinstance(base, ast.Name) and base.id == "object"):
                self.add(base, "class", "the mechanism class may not inherit from anything (write `class Name:`)")
        for decorator in mechanism.decorator_list:
            if not _is_dataclass_decorator(decorator):
                self.add(decorator, "class", "the only decorator allowed on the mechanism class is @dataclass")
        for position, node in enumerate(mechanism.body):
            allowed = (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Pass)
            if isinstance(node, allowed) or (position == 0 and _is_docstring(node)):
                continue
            self.add(node, "class-body", "the class body may hold only attributes, methods and a docstring; move this code into a method")

    # -- every node --------------------------------------------------------------------------

    def _check_node(self, node: ast.AST) -> None:
        if isinstance(node, ASYNC_NODES):
            self.add(node, "async", "async code is not supported in mechanisms")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self._check_import(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            self._check_import_from(node)
        elif isinstance(node, ast.Name):
            self._check_name(node, node.id)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            if is_dunder(node.name) and node.name not in ALLOWED_DUNDERS:
                self.add(node, "dunder", f"defining {node.name} is not allowed (only __init__); use plain methods, and tuples as heap entries")
        elif isinstance(node, ast.arg):
            self._check_name(node, node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                self._check_name(node, name)
        elif isinstance(node, ast.alias) and node.asname:
            self._check_name(node, node.asname)
        elif isinstance(node, ast.keyword) and node.arg is not None and is_dunder(node.arg):
            self.add(node, "dunder", f"keyword argument {node.arg} is not allowed")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self._check_name(node, node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self._check_name(node, node.name)

    def _check_import(self, node: ast.AST, dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] not in ALLOWED_IMPORTS:
            allowed = ", ".join(sorted(ALLOWED_IMPORTS))
            self.add(node, "import", f"import of {dotted!r} is not allowed; allowed modules: {allowed}")
            return
        for part in parts[1:]:
            if part.startswith("_") or (parts[0] == "numpy" and part in FORBIDDEN_NUMPY_ATTRIBUTES):
                self.add(node, "import", f"import of {dotted!r} is not allowed (private or file/memory access)")
                return

    def _check_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "import", "relative imports are not allowed")
            return
        module = node.module or ""
        self._check_import(node, module)
        for alias in node.names:
            if alias.name == "*":
                self.add(node, "import", f"`from {module} import *` is not allowed: import the names you use")
            elif alias.name.startswith("_") or alias.name in FORBIDDEN_ATTRIBUTES:
                self.add(node, "import", f"importing {alias.name!r} from {module!r} is not allowed")
            elif module.split(".")[0] == "numpy" and alias.name in FORBIDDEN_NUMPY_ATTRIBUTES:
                self.add(node, "import", f"numpy.{alias.name} is not allowed: mechanisms have no files")

    def _check_name(self, node: ast.AST, name: str) -> None:
        if is_dunder(name) and name not in ALLOWED_DUNDERS:
            self.add(node, "dunder", f"the name {name} is not allowed (no dunder names)")
        elif name in FORBIDDEN_NAMES:
            self.add(node, "forbidden-name", f"{name!r} is not available in mechanisms (no files, reflection or code execution)")

    def _check_attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if is_dunder(name) and name not in ALLOWED_DUNDERS:
            self.add(node, "dunder", f"attribute {name} is not allowed (no dunder attribute access)")
            return
        if name in FORBIDDEN_ATTRIBUTES:
            self.add(node, "forbidden-attribute", f"attribute {name!r} is not allowed (frames, raw memory and files are off limits)")
            return
        root = _chain_root(node)
        module = self.module_aliases.get(root or "")
        if module is None:
            return
        if name.startswith("_"):
            self.add(node, "private-attribute", f"private module attribute {name!r} is not allowed; use the module's public API")
        elif module.split(".")[0] == "numpy" and name in FORBIDDEN_NUMPY_ATTRIBUTES:
            self.add(node, "forbidden-attribute", f"numpy {name!r} is not allowed: mechanisms have no files")


def _chain_root(node: ast.Attribute) -> str | None:
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        current = current.value
    return current.id if isinstance(current, ast.Name) else None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id == "dataclass"
    return isinstance(target, ast.Attribute) and target.attr == "dataclass" and _chain_root(target) == "dataclasses"


def _is_constant_assignment(node: ast.Assign | ast.AnnAssign) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    return node.value is not None and _is_constant_expression(node.value)


def _is_constant_expression(node: ast.expr) -> bool:
    """Literals, containers of them, arithmetic, names and module attributes; calls only to CONSTANT_CALLS."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return _is_constant_expression(node.value)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant_expression(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_constant_expression(k) for k in node.keys) and all(_is_constant_expression(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _is_constant_expression(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_constant_expression(node.left) and _is_constant_expression(node.right)
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Name)
            and node.func.id in CONSTANT_CALLS
            and not node.keywords
            and all(_is_constant_expression(a) for a in node.args)
        )
    return False
