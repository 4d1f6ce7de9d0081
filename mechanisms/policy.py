"""Static policy for untrusted mechanism source: an AST check that reports every violation with its line.

This module imports the standard library only: the sandbox worker loads it by file path (it never
imports our packages) and runs the same check again before executing any mechanism. The worker also
builds its restricted builtins and module proxies from the allowlists defined here, so the static
check and the runtime layer allow exactly the same names (DESIGN §5).

Deny by default: a mechanism is one class; it may use its own names, the builtins in SAFE_BUILTINS
and, of each allowlisted module, only the names listed for it in STANDARD_MODULES (plus the names a
trusted module such as helpers.py exports in `__all__`). Modules are used only as `module.NAME`:
never assigned, passed, returned or stored, and never written to. No dunders, no reflection, no I/O,
no format strings that reach attributes or items. Messages are written for an LLM that has to repair
the code.
"""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass, field
from pathlib import Path

try:
    from search.pyast import parse_python
except ModuleNotFoundError:  # inside the sandbox worker: our packages are not importable, and it is single-threaded
    def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
        return ast.parse(source, filename=filename, mode="exec")

# The hooks a mechanism may define and how many arguments each takes after `self` (hook API v2).
HOOK_ARITY = {"plan": 1, "propose": 1, "screen": 2, "accept": 3, "observe": 2}
HOOKS = tuple(HOOK_ARITY)

# The builtins a mechanism sees (the worker's restricted builtins are exactly these, plus the
# `print` it routes to stderr and the machinery that `class` and `import` statements need).
SAFE_BUILTINS = frozenset(
    (
        "abs all any ascii bin bool bytearray bytes callable chr classmethod complex dict divmod enumerate "
        "filter float format frozenset hasattr hash hex int isinstance issubclass iter len list map max "
        "min next object oct ord pow print property range repr reversed round set slice sorted staticmethod str "
        "sum super tuple zip True False None NotImplemented Ellipsis "
        "Exception ArithmeticError AssertionError AttributeError IndexError KeyError LookupError MemoryError "
        "NotImplementedError OverflowError RecursionError RuntimeError StopIteration TypeError ValueError "
        "ZeroDivisionError"
    ).split()
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# For each module a mechanism may import, the names it may use. A key "a.b" makes the name `b` of
# module `a` a submodule. Left out on purpose: everything that reads or writes files (json.load/dump,
# numpy.save/load/fromfile/memmap/...), reaches functions' globals or evaluates strings
# (functools.update_wrapper/wraps/partial, typing.get_type_hints, dataclasses.make_dataclass),
# and module-valued attributes (random._os, numpy.lib, ...).
STANDARD_MODULES: dict[str, frozenset[str]] = {
    "__future__": _names("annotations"),
    "math": _names(
        "acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist e erf erfc exp exp2 "
        "expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot inf isclose isfinite isinf isnan isqrt lcm "
        "ldexp lgamma log log10 log1p log2 modf nan nextafter perm pi pow prod radians remainder sin sinh sqrt tan "
        "tanh tau trunc ulp"
    ),
    "random": _names(
        "Random betavariate choice choices expovariate gammavariate gauss getrandbits lognormvariate normalvariate "
        "paretovariate randint random randrange sample seed shuffle triangular uniform vonmisesvariate weibullvariate"
    ),
    "statistics": _names(
        "NormalDist StatisticsError correlation covariance fmean geometric_mean harmonic_mean linear_regression mean "
        "median median_grouped median_high median_low mode multimode pstdev pvariance quantiles stdev variance"
    ),
    "collections": _names("Counter OrderedDict defaultdict deque"),
    "itertools": _names(
        "accumulate chain combinations combinations_with_replacement compress count cycle dropwhile filterfalse "
        "groupby islice pairwise permutations product repeat starmap takewhile tee zip_longest"
    ),
    "heapq": _names("heapify heappop heappush heappushpop heapreplace merge nlargest nsmallest"),
    "bisect": _names("bisect bisect_left bisect_right insort insort_left insort_right"),
    "json": _names("dumps loads JSONDecodeError"),
    "re": _names(
        "A ASCII DOTALL I IGNORECASE M MULTILINE S VERBOSE X compile error escape findall finditer fullmatch match "
        "search split sub subn"
    ),
    "dataclasses": _names("dataclass field"),
    "typing": _names("Any Callable Dict FrozenSet Iterable List Mapping Optional Sequence Set Tuple Union"),
    "numpy": _names(
        "abs absolute all allclose amax amin any append arange arccos arccosh arcsin arcsinh arctan arctan2 arctanh "
        "argmax argmin argpartition argsort argwhere around array array_equal asarray atleast_1d atleast_2d average "
        "bincount bool_ broadcast_to cbrt ceil clip column_stack concatenate copy corrcoef cos cosh count_nonzero cov "
        "cross cumprod cumsum deg2rad degrees diag diagonal diff digitize divide dot dtype e einsum equal exp exp2 "
        "expand_dims expm1 eye fabs flatnonzero flip float16 float32 float64 floor floor_divide fmax fmin fmod full "
        "full_like geomspace greater greater_equal histogram hstack hypot identity inf inner int8 int16 int32 int64 "
        "interp intersect1d isclose isfinite isin isinf isnan kron less less_equal linspace log log10 log1p log2 "
        "logaddexp logical_and logical_not logical_or logical_xor logspace matmul max maximum mean median meshgrid "
        "min minimum mod moveaxis multiply nan nan_to_num nanargmax nanargmin nanmax nanmean nanmedian nanmin "
        "nanpercentile nanquantile nanstd nansum nanvar ndim negative nonzero not_equal ones ones_like outer pad "
        "partition percentile pi polyfit polyval power prod ptp quantile rad2deg radians ravel reciprocal remainder "
        "repeat reshape rint roll round searchsorted setdiff1d shape sign sin sinh size sort split sqrt square squeeze "
        "stack std subtract sum swapaxes take tan tanh tile trace transpose trapezoid tril triu true_divide trunc "
        "uint8 union1d unique var vstack where zeros zeros_like "
        "random linalg"
    ),
    "numpy.random": _names(
        "Generator default_rng seed rand randn randint random choice uniform normal permutation shuffle exponential "
        "lognormal beta gamma poisson binomial multivariate_normal dirichlet standard_normal"
    ),
    "numpy.linalg": _names(
        "norm inv pinv solve det eig eigh eigvals eigvalsh svd lstsq cholesky qr matrix_rank cond slogdet LinAlgError"
    ),
}

# Trusted modules of ours that mechanisms may import (stdlib-only pure functions next to this file).
# What they export is read from their `__all__` with the AST: this module never imports them.
TRUSTED_MODULE_FILES = {"helpers": "helpers.py"}

# Builtins that reach outside the mechanism (files, code execution, reflection) or would let it
# rewrite objects by name, and modules that are never importable; named for a clearer message.
FORBIDDEN_NAMES = frozenset(
    (
        "open exec eval compile __import__ globals locals vars getattr setattr delattr breakpoint input memoryview "
        "type help exit quit dir copyright credits license "
        "os sys subprocess socket builtins importlib ctypes gc inspect pickle marshal functools codecs"
    ).split()
)

# Attributes that reach frames, code objects, raw memory or files, whatever object they are read from.
FORBIDDEN_ATTRIBUTES = frozenset(
    (
        "gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code f_back f_globals f_locals "
        "f_builtins f_code f_trace tb_frame tb_next co_code co_consts co_names ctypes ctypeslib cffi as_strided "
        "tofile dump memmap"
    ).split()
)
FORMAT_METHODS = frozenset({"format", "format_map"})
# The only classes a `case C(...)` pattern may name: builtins that match the subject itself with one
# positional pattern. Any other class pattern reads attributes by names held in strings (keyword
# patterns, and positional ones through the class's __match_args__), out of reach of the attribute rules.
MATCH_CLASSES = frozenset("bool bytearray bytes dict float frozenset int list set str tuple".split())

# Calls allowed in a module-level constant, e.g. NAMES = frozenset({"DEPTH", "WIDTH"}).
CONSTANT_CALLS = frozenset({"frozenset", "tuple", "dict", "set", "list", "float", "int", "str"})
ALLOWED_DUNDERS = frozenset({"__init__"})
METHOD_DECORATORS = frozenset({"staticmethod", "classmethod", "property"})
PROPERTY_DECORATOR_ATTRIBUTES = frozenset({"setter", "getter", "deleter"})
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
MAX_LISTED_NAMES = 30  # longer allowlists are not spelled out in a message


def trusted_module_names(path: str | Path) -> frozenset[str]:
    """The names a trusted module exports: its literal `__all__`, read with the AST (never imported).
    Raises ValueError if the file has no literal `__all__` of strings."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            value = node.value
            if isinstance(value, (ast.List, ast.Tuple, ast.Set)) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
            ):
                return frozenset(e.value for e in value.elts if not e.value.startswith("_"))
            break
    raise ValueError(f"{path} must define __all__ as a literal list of names")


def trusted_module_paths(directory: str | Path | None = None) -> dict[str, str]:
    """The trusted modules that exist next to this file (or in `directory`), by import name."""
    base = Path(directory) if directory is not None else Path(__file__).resolve().parent
    return {name: str(base / file) for name, file in TRUSTED_MODULE_FILES.items() if (base / file).is_file()}


def build_allowlist(trusted: dict[str, str] | None = None) -> dict[str, frozenset[str]]:
    """The standard modules plus each trusted module (name -> file path) with the names of its `__all__`."""
    allowlist = dict(STANDARD_MODULES)
    for name, path in (trusted_module_paths() if trusted is None else trusted).items():
        allowlist[name] = trusted_module_names(path)
    return allowlist


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


_DEFAULT_ALLOWLIST: dict[str, frozenset[str]] | None = None


def default_allowlist() -> dict[str, frozenset[str]]:
    """build_allowlist() for the trusted modules next to this file, read once."""
    global _DEFAULT_ALLOWLIST  # noqa: PLW0603 - a cache; the worker is single-threaded and the host only reads
    if _DEFAULT_ALLOWLIST is None:
        _DEFAULT_ALLOWLIST = build_allowlist()
    return _DEFAULT_ALLOWLIST


def check_source(source: str, limits: PolicyLimits | None = None,
                 allowlist: dict[str, frozenset[str]] | None = None) -> PolicyReport:
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
    checker = _Checker(limits, allowlist if allowlist is not None else default_allowlist())
    checker.check(tree)
    ordered = sorted(set(checker.violations), key=lambda v: (v.line, v.rule, v.message))
    return PolicyReport(tuple(ordered[:MAX_VIOLATIONS]), checker.class_name, truncated=len(ordered) > MAX_VIOLATIONS)


@dataclass
class _Checker:
    limits: PolicyLimits
    allowlist: dict[str, frozenset[str]]
    violations: list[Violation] = field(default_factory=list)
    class_name: str | None = None
    imported: dict[str, str] = field(default_factory=dict)  # local name -> what it is bound to ("numpy", "math.sqrt")
    bound: set[str] = field(default_factory=set)  # every name the source binds, in any scope
    parents: dict[int, ast.AST] = field(default_factory=dict)

    def add(self, node: ast.AST | None, rule: str, message: str) -> None:
        self.violations.append(Violation(getattr(node, "lineno", 0) or 0, rule, message))

    def check(self, tree: ast.Module) -> None:
        if not self._within_size(tree):
            return
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
        self._collect_bindings(tree)
        self._check_top_level(tree)
        self._check_nesting(tree)
        for node in ast.walk(tree):
            self._check_node(node)

    # -- what the names are ----------------------------------------------------------------------

    def is_module(self, target: str | None) -> bool:
        return target is not None and target in self.allowlist

    def _collect_bindings(self, tree: ast.Module) -> None:
        """Names bound by imports (and what to), and every other name the source binds anywhere."""
        other: list[tuple[ast.AST, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b
                    bound, target = (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
                    self._bind_import(node, bound, target)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self._bind_import(node, alias.asname or alias.name, f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                other.append((node, node.id))
            elif isinstance(node, ast.arg):
                other.append((node, node.arg))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                other.append((node, node.name))
            elif isinstance(node, ast.ExceptHandler) and node.name:
                other.append((node, node.name))
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                other.append((node, node.name))
            elif isinstance(node, ast.MatchMapping) and node.rest:
                other.append((node, node.rest))
        for node, name in other:
            if name in self.imported and not self._is_class_attribute(node):
                self.add(node, "import-rebound", f"the name {name!r} is bound by an import; give this variable another name")
            self.bound.add(name)

    def _is_class_attribute(self, node: ast.AST) -> bool:
        """A method or attribute defined in a class body: it does not shadow a module-level import in methods."""
        parent = self.parents.get(id(node))
        if isinstance(node, ast.Name):
            parent = self.parents.get(id(parent)) if isinstance(parent, (ast.Assign, ast.AnnAssign)) else None
        return isinstance(parent, ast.ClassDef)

    def _bind_import(self, node: ast.AST, name: str, target: str) -> None:
        previous = self.imported.get(name)
        if previous is not None and previous != target:
            self.add(node, "import-rebound", f"the name {name!r} is imported twice ({previous} and {target}); import each name once")
        self.imported[name] = target
        self.bound.add(name)

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
        self.class_name = classes[0].name
        self._check_hook_signatures(classes[0])

    def _check_class(self, node: ast.ClassDef) -> None:
        """The same rules for the mechanism class and for every class nested in it."""
        if node.keywords:
            self.add(node, "class", f"class {node.name} may not take keywords such as metaclass=")
        for base in node.bases:
            if not (isinstance(base, ast.Name) and base.id == "object"):
                self.add(base, "class", f"class {node.name} may not inherit from anything (write `class {node.name}:`)")
        for decorator in node.decorator_list:
            if not self._is_dataclass_decorator(decorator):
                self.add(decorator, "class", f"the only decorator allowed on class {node.name} is @dataclass")
        for position, statement in enumerate(node.body):
            allowed = (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Pass)
            if isinstance(statement, allowed) or (position == 0 and _is_docstring(statement)):
                continue
            self.add(statement, "class-body", f"the body of class {node.name} may hold only attributes, methods and a docstring; move this code into a method")

    def _check_function(self, node: ast.FunctionDef) -> None:
        if is_dunder(node.name) and node.name not in ALLOWED_DUNDERS:
            self.add(node, "dunder", f"defining {node.name} is not allowed (only __init__); use plain methods, and tuples as heap entries")
        for decorator in node.decorator_list:
            plain = isinstance(decorator, ast.Name) and decorator.id in METHOD_DECORATORS
            accessor = (isinstance(decorator, ast.Attribute) and isinstance(decorator.value, ast.Name)
                        and decorator.attr in PROPERTY_DECORATOR_ATTRIBUTES)
            if not (plain or accessor):
                self.add(decorator, "decorator", f"the decorator on {node.name} is not allowed; use only @staticmethod, @classmethod or @property")

    def _check_hook_signatures(self, cls: ast.ClassDef) -> None:
        for node in cls.body:
            if not isinstance(node, ast.FunctionDef) or node.name not in HOOK_ARITY or node.decorator_list:
                continue
            arity = HOOK_ARITY[node.name]
            positional = [*node.args.posonlyargs, *node.args.args]
            required = len(positional) - len(node.args.defaults)
            takes = len(positional) >= 1 + arity or node.args.vararg is not None
            kw_required = any(default is None for default in node.args.kw_defaults)
            if required > 1 + arity or not takes or kw_required:
                wanted = ", ".join(["self", *_HOOK_PARAMETERS[node.name]])
                self.add(node, "hook-signature", f"hook {node.name} must be defined as `def {node.name}({wanted}):`")

    def _is_dataclass_decorator(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Name):
            return self.imported.get(target.id) == "dataclasses.dataclass"
        return (isinstance(target, ast.Attribute) and target.attr == "dataclass" and isinstance(target.value, ast.Name)
                and self.imported.get(target.value.id) == "dataclasses")

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
            self._check_name_use(node)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node)
        elif isinstance(node, ast.ClassDef):
            if is_dunder(node.name):
                self.add(node, "dunder", f"the class name {node.name} is not allowed (no dunder names)")
            self._check_class(node)
        elif isinstance(node, ast.FunctionDef):
            self._check_function(node)
            self._check_annotation(node.returns)
        elif isinstance(node, ast.arg):
            self._check_name(node, node.arg)
            self._check_annotation(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            self._check_annotation(node.annotation)
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
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self._check_name(node, node.rest)
        elif isinstance(node, ast.MatchClass):
            self._check_match_class(node)
        elif isinstance(node, ast.Subscript):
            self._check_typing_subscript(node)

    def _check_match_class(self, node: ast.MatchClass) -> None:
        """`case C(a, k=v)` reads `subject.k` and, for most classes, `subject.<C.__match_args__[0]>`
        with getattr: names held in strings. Allowed: a builtin type that matches the subject itself."""
        cls = node.cls
        if not (isinstance(cls, ast.Name) and cls.id in MATCH_CLASSES and cls.id not in self.bound):
            self.add(node, "match-class", "class patterns such as `case C(...)` are allowed only with the builtin types "
                                          f"{', '.join(sorted(MATCH_CLASSES))}; test with isinstance() and read attributes in the case body")
            return
        if node.kwd_attrs:
            names = ", ".join(node.kwd_attrs[:5])
            self.add(node, "match-class", f"keyword patterns ({names}) read attributes by name: match `{cls.id}(x)` and read attributes in the case body")
        if len(node.patterns) > 1:
            self.add(node, "match-class", f"`case {cls.id}(...)` takes at most one positional pattern")

    def _check_typing_subscript(self, node: ast.Subscript) -> None:
        """`typing.Optional["..."]` makes a forward reference: code in a string, evaluated with real builtins."""
        root = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        target = self.imported.get(root.id, "") if isinstance(root, ast.Name) else ""
        if target != "typing" and not target.startswith("typing."):
            return
        if any(isinstance(part, ast.Constant) and isinstance(part.value, str) for part in ast.walk(node.slice)):
            self.add(node, "annotation", "typing subscripts may not hold strings (forward references are code): write the type itself")

    def _check_import(self, node: ast.AST, dotted: str) -> None:
        if dotted not in self.allowlist:
            top = dotted.split(".")[0]
            if top in self.allowlist:
                self.add(node, "import", f"import of {dotted!r} is not allowed; import {top!r} and use its allowed names")
            else:
                allowed = ", ".join(sorted(m for m in self.allowlist if "." not in m and m != "__future__"))
                self.add(node, "import", f"import of {dotted!r} is not allowed; allowed modules: {allowed}")

    def _check_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "import", "relative imports are not allowed")
            return
        module = node.module or ""
        self._check_import(node, module)
        if module not in self.allowlist:
            return
        for alias in node.names:
            if alias.name == "*":
                self.add(node, "import", f"`from {module} import *` is not allowed: import the names you use")
            elif alias.name not in self.allowlist[module]:
                self.add(node, "import", self._unknown_name_message(module, alias.name))

    def _unknown_name_message(self, module: str, name: str) -> str:
        names = sorted(self.allowlist[module])
        listed = f": {', '.join(names)}" if len(names) <= MAX_LISTED_NAMES else " (its file, I/O and reflection functions are not)"
        return f"{module}.{name} is not available in mechanisms; {module} offers only allowlisted names{listed}"

    def _check_name(self, node: ast.AST, name: str) -> None:
        if is_dunder(name) and name not in ALLOWED_DUNDERS:
            self.add(node, "dunder", f"the name {name} is not allowed (no dunder names)")
        elif name in FORBIDDEN_NAMES:
            self.add(node, "forbidden-name", f"{name!r} is not available in mechanisms (no files, reflection or code execution)")

    def _check_name_use(self, node: ast.Name) -> None:
        self._check_name(node, node.id)
        if is_dunder(node.id) or node.id in FORBIDDEN_NAMES:
            return
        if isinstance(node.ctx, ast.Load) and node.id not in self.bound and node.id not in SAFE_BUILTINS:
            self.add(node, "undefined-name", f"the name {node.id!r} is not defined: a mechanism may use only its own "
                                             "names, imported names and the basic builtins")
            return
        if node.id == "hasattr" and node.id not in self.bound:
            self._check_hasattr(node)
        if isinstance(node.ctx, ast.Load) and self.is_module(self.imported.get(node.id)):
            parent = self.parents.get(id(node))
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                self._module_as_value(node, self.imported[node.id])

    def _check_hasattr(self, node: ast.Name) -> None:
        """hasattr reads an attribute by a name held in a string: only a literal plain name, called directly."""
        call = self.parents.get(id(node))
        if not (isinstance(call, ast.Call) and call.func is node and len(call.args) == 2 and not call.keywords):
            self.add(node, "hasattr", "hasattr may only be called directly, as hasattr(value, \"name\") with a literal name")
            return
        name = call.args[1]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.isidentifier()):
            self.add(node, "hasattr", "the attribute name given to hasattr must be a literal name")
        elif is_dunder(name.value) or name.value in FORBIDDEN_ATTRIBUTES:
            self.add(node, "hasattr", f"hasattr(..., {name.value!r}) is not allowed (no dunder or forbidden attributes)")

    def _module_as_value(self, node: ast.AST, module: str) -> None:
        self.add(node, "module-alias", f"use the module {module} only as `{module.split('.')[-1]}.NAME`: "
                                       "do not assign, pass, return or store the module itself")

    def _check_attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if is_dunder(name) and name not in ALLOWED_DUNDERS:
            self.add(node, "dunder", f"attribute {name} is not allowed (no dunder attribute access)")
            return
        if name in FORBIDDEN_ATTRIBUTES:
            self.add(node, "forbidden-attribute", f"attribute {name!r} is not allowed (frames, raw memory and files are off limits)")
            return
        if name in FORMAT_METHODS:
            self._check_format(node)
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # the outermost attribute of a chain checks the whole chain
        chain = _attribute_chain(node)
        if chain is None:
            return
        root, attributes = chain
        target = self.imported.get(root)
        if target is None:
            return
        if not isinstance(node.ctx, ast.Load):
            self.add(node, "module-write", f"{root} is imported: modules and imported names are read-only")
            return
        if self.is_module(target):
            self._check_module_chain(node, target, attributes)

    def _check_module_chain(self, node: ast.Attribute, module: str, attributes: list[str]) -> None:
        """`np.random.default_rng`: every step must be an allowed name; a chain must not end on a module."""
        current = module
        for attribute in attributes:
            if attribute not in self.allowlist[current]:
                self.add(node, "module-attribute", self._unknown_name_message(current, attribute))
                return
            submodule = f"{current}.{attribute}"
            if submodule not in self.allowlist:
                return  # a function or constant: what follows is an attribute of a value
            current = submodule
        self._module_as_value(node, current)

    def _check_format(self, node: ast.Attribute) -> None:
        """str.format and format_map look up attributes and items named in the template: allow plain fields only."""
        template = node.value
        if isinstance(template, ast.Name) and template.id == "self":
            return  # the mechanism's own method or attribute named format, not str.format
        if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
            self.add(node, "format", f".{node.attr} is allowed only on a string literal; use an f-string instead")
            return
        problem = _format_field_problem(template.value)
        if problem:
            self.add(node, "format", f"format string {template.value[:60]!r}: {problem}; use an f-string instead")

    def _check_annotation(self, annotation: ast.AST | None) -> None:
        if annotation is None:
            return
        for part in ast.walk(annotation):
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                self.add(part, "annotation", "write annotations without quotes (string annotations are not allowed), or leave them out")
                return


_HOOK_PARAMETERS = {
    "plan": ("ctx",),
    "propose": ("ctx",),
    "screen": ("ctx", "candidates"),
    "accept": ("ctx", "result", "default"),
    "observe": ("ctx", "result"),
}


def _format_field_problem(template: str, depth: int = 0) -> str | None:
    """Why a format template is refused (a field reaches an attribute or an item), or None."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"it is not a valid format string ({error})"
    for _literal, field_name, format_spec, _conversion in parts:
        if field_name and ("." in field_name or "[" in field_name):
            return f"the field {{{field_name}}} reaches an attribute or item"
        if format_spec and depth < 2:
            problem = _format_field_problem(format_spec, depth + 1)
            if problem:
                return problem
    return None


def _attribute_chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """`a.b.c` -> ("a", ["b", "c"]); None when the chain does not start at a plain name."""
    attributes = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        attributes.append(current.attr)
        current = current.value
    return (current.id, attributes[::-1]) if isinstance(current, ast.Name) else None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


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
