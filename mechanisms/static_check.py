"""Static checks of a mechanism before the sandbox, with messages a small model can act on: undefined names
(pyflakes), `self.x` used but never defined, helpers that do not exist or are called with the wrong number of
arguments, hook signatures, and keys of ctx/result that do not exist. Never executes the code."""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from mechanisms import helpers
from search.context import RESERVED_VIEW_KEYS
from search.hooks import HOOKS
from search.pyast import parse_python

HOOK_ARGUMENTS = {"plan": ("ctx",), "propose": ("ctx",), "screen": ("ctx", "candidates"),
                  "accept": ("ctx", "result", "default"), "observe": ("ctx", "result")}
CTX_KEYS = frozenset({"api", "iteration", "generation", "track", "seed", "objective", "params", "frozen", "fixed",
                      "constraints", "search_config", "baseline", "current", "best", "trace"})
POINT_KEYS = frozenset({"config", "value", "index"})
RESULT_KEYS = frozenset(RESERVED_VIEW_KEYS - {"reason", "source", "iteration", "seed"})
REPORTED_PYFLAKES = (pyflakes_messages.UndefinedName, pyflakes_messages.UndefinedLocal,
                     pyflakes_messages.DuplicateArgument, pyflakes_messages.ReturnOutsideFunction,
                     pyflakes_messages.UndefinedExport)
MAX_FINDINGS = 8

# What a small model writes for a key of ctx, and the expression it meant. Checked against CTX_KEYS by a test;
# mechanisms/autofix.py applies them, the findings below suggest them.
CTX_SYNONYMS = {
    "current_config": '["current"]["config"]', "current_params": '["current"]["config"]',
    "current_value": '["current"]["value"]', "config": '["current"]["config"]', "params_config": '["current"]["config"]',
    "best_config": '["best"]["config"]', "best_params": '["best"]["config"]', "best_value": '["best"]["value"]',
    "best_score": '["best"]["value"]', "incumbent": '["best"]', "baseline_config": '["baseline"]["config"]',
    "baseline_value": '["baseline"]["value"]', "history": '["trace"]', "experiments": '["trace"]',
    "results": '["trace"]', "goal": '["objective"]["goal"]', "metric": '["objective"]["name"]',
    "parameters": '["params"]', "space": '["params"]', "search_space": '["params"]', "rng": '["seed"]',
}
RESULT_SYNONYMS = {"score": "value", "metric": "value", "loss": "value", "accepted": "kept", "keep": "kept",
                   "params": "config", "parameters": "config", "change": "changes", "diff": "changes"}
# accept decides "kept", so its result holds the loop's default decision instead (search/iteration.py); a mechanism
# that reads result["kept"] there raised KeyError in live runs after its liveness replay passed (session 6 dev check).
ACCEPT_RESULT_KEYS = RESULT_KEYS - {"kept"}
ACCEPT_SYNONYMS = {**RESULT_SYNONYMS, "accepted": "default_kept", "keep": "default_kept", "kept": "default_kept"}


def result_keys(hook: str) -> frozenset[str]:
    """The keys of `result` in a hook: accept's lacks "kept" (it decides it)."""
    return ACCEPT_RESULT_KEYS if hook == "accept" else RESULT_KEYS


def result_synonyms(hook: str) -> dict[str, str]:
    """What a small model writes for a key of `result` in a hook, and the key it meant."""
    return ACCEPT_SYNONYMS if hook == "accept" else RESULT_SYNONYMS


@dataclass(frozen=True)
class Finding:
    """One problem, where it is, and what to do instead."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def helper_signatures() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(helpers, name)) for name in helpers.__all__}


def check_mechanism(source: str, metric_name: str | None = None) -> list[Finding]:
    """Every finding (at most MAX_FINDINGS), in line order; empty when the code passes. `metric_name` is the
    objective's own name, a valid key of points and results too."""
    try:
        tree = parse_python(source, filename="<mechanism>")
    except SyntaxError as error:
        return [Finding(error.lineno or 0, f"syntax error: {error.msg}")]
    findings = [*_pyflakes(tree), *_hooks_and_attributes(tree), *_helper_calls(tree),
                *_unknown_keys(tree, metric_name)]
    unique = sorted(set(findings), key=lambda f: (f.line, f.message))
    return unique[:MAX_FINDINGS]


def _init_lines(tree: ast.Module) -> set[int]:
    cls = _the_class(tree)
    init = next((n for n in (cls.body if cls else []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    return set(range(init.lineno, (init.end_lineno or init.lineno) + 1)) if init else set()


def _pyflakes(tree: ast.Module) -> list[Finding]:
    found = []
    in_init = _init_lines(tree)
    for message in pyflakes_checker.Checker(tree, filename="<mechanism>").messages:
        if isinstance(message, REPORTED_PYFLAKES):
            text = message.message % message.message_args
            if isinstance(message, pyflakes_messages.UndefinedName):
                name = message.message_args[0]
                if name in helpers.__all__:
                    text += f"; the helpers are called as h.{name}(...) after `import helpers as h`"
                elif name in ("ctx", "result", "candidates") and message.lineno in in_init:
                    text = (f"{name} is not available in __init__ (it takes no arguments): start the state empty there "
                            "(e.g. {} or []) and fill it in observe(self, ctx, result)")
            found.append(Finding(message.lineno, text))
    return found


def _the_class(tree: ast.Module) -> ast.ClassDef | None:
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    return classes[0] if len(classes) == 1 else None


def _hooks_and_attributes(tree: ast.Module) -> list[Finding]:
    cls = _the_class(tree)
    if cls is None:
        return []
    found: list[Finding] = []
    methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    defined = set(methods)
    for node in cls.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.attr)
    for hook, method in methods.items():
        if hook in HOOK_ARGUMENTS:
            names = [a.arg for a in method.args.args]
            expected = ["self", *HOOK_ARGUMENTS[hook]]
            if len(names) != len(expected) or method.args.vararg or method.args.kwonlyargs:
                found.append(Finding(method.lineno, f"the hook must be `def {hook}({', '.join(expected)}):`, "
                                                    f"not `def {hook}({', '.join(names)}):`"))
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, ast.Load) and node.attr not in defined:
            hint = (f"; did you mean the helper h.{node.attr}(...)?" if node.attr in helpers.__all__
                    else "; define it (in __init__ or as a method) or do not use it")
            found.append(Finding(node.lineno, f"self.{node.attr} is used but never defined{hint}"))
    if not any(hook in methods for hook in HOOKS):
        found.append(Finding(cls.lineno, f"the class defines none of the hooks {', '.join(HOOKS)}"))
    return found


def _helper_aliases(tree: ast.Module) -> tuple[set[str], dict[str, str]]:
    """Names bound to the helpers module, and names imported from it (local name -> helper name)."""
    modules, functions = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == "helpers")
        elif isinstance(node, ast.ImportFrom) and node.module == "helpers":
            functions.update({alias.asname or alias.name: alias.name for alias in node.names})
    return modules, functions


def _helper_calls(tree: ast.Module) -> list[Finding]:
    modules, functions = _helper_aliases(tree)
    signatures = helper_signatures()
    found: list[Finding] = []  # a helper that does not exist is the policy's finding (it knows the sandbox's modules)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        helper = None
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) and node.func.value.id in modules:
            helper = node.func.attr
        elif isinstance(node.func, ast.Name) and node.func.id in functions:
            helper = functions[node.func.id]
        if helper is None or helper not in signatures or any(isinstance(a, ast.Starred) for a in node.args):
            continue
        try:
            signatures[helper].bind(*([None] * len(node.args)), **{k.arg: None for k in node.keywords if k.arg})
        except TypeError:
            found.append(Finding(node.lineno, f"h.{helper} takes ({', '.join(signatures[helper].parameters)}); "
                                              f"this call passes {len(node.args)} positional argument(s)"))
    return found


def _subscript_key(node: ast.AST) -> tuple[ast.AST, str] | None:
    """(container, key) of `x["key"]` or `x.get("key", ...)`."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.value, node.slice.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.func.value, node.args[0].value
    return None


def _unknown_keys(tree: ast.Module, metric_name: str | None) -> list[Finding]:
    cls = _the_class(tree)
    if cls is None:
        return []
    extra = {metric_name} if metric_name else set()
    found: list[Finding] = []
    for method in (node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name in HOOK_ARGUMENTS):
        names = [a.arg for a in method.args.args][1:]
        roles = dict(zip(names, HOOK_ARGUMENTS[method.name]))
        for node in ast.walk(method):
            access = _subscript_key(node)
            if access is None:
                continue
            container, key = access
            if isinstance(container, ast.Name) and roles.get(container.id) == "ctx" and key not in CTX_KEYS:
                meant = f"; did you mean ctx{CTX_SYNONYMS[key]}?" if key in CTX_SYNONYMS else ""
                found.append(Finding(node.lineno, f"ctx has no key {key!r}{meant}; its keys are {', '.join(sorted(CTX_KEYS))}"))
            elif (isinstance(container, ast.Name) and roles.get(container.id) == "result"
                  and key not in result_keys(method.name) | extra):
                synonyms = result_synonyms(method.name)
                meant = f"; did you mean result[{synonyms[key]!r}]?" if key in synonyms else ""
                where = " in accept (accept decides it)" if key == "kept" and method.name == "accept" else ""
                found.append(Finding(node.lineno, f"result has no key {key!r}{where}{meant}; its keys are "
                                                  f"{', '.join(sorted(result_keys(method.name)))}"))
            else:
                inner = _subscript_key(container)
                if (inner is not None and isinstance(inner[0], ast.Name) and roles.get(inner[0].id) == "ctx"
                        and inner[1] in ("best", "current", "baseline") and key not in POINT_KEYS | extra):
                    found.append(Finding(node.lineno, f"ctx[{inner[1]!r}] has no key {key!r}; it has "
                                                      f"{', '.join(sorted(POINT_KEYS))}"))
    return found


def summary(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings)

