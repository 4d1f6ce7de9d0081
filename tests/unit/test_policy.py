"""Static policy of mechanism source: what is allowed, what is refused, and that every violation has its line."""

from __future__ import annotations

import textwrap

import pytest

from mechanisms.library import list_library
from mechanisms.policy import PolicyLimits, build_allowlist, check_source, trusted_module_names, trusted_module_paths

GOOD = textwrap.dedent(
    '''
    """A good mechanism."""
    import math
    import numpy as np
    from collections import Counter
    from dataclasses import dataclass

    LIMIT = 3
    NAMES = frozenset({"DEPTH", "WIDTH"})
    SCALE = 2 ** -3 * LIMIT


    class Good:
        """Plans."""

        name = "good"
        weights: dict = None

        def __init__(self):
            self.seen = Counter()

        def plan(self, ctx):
            values = np.array([1.0, 2.0])
            best = max(self.seen, key=lambda n: self.seen[n], default=None)
            return {"guidance": f"{best} {math.sqrt(float(values.mean()))}"}

        def observe(self, ctx, result):
            for name in result["changes"]:
                self.seen[name] += 1

        @staticmethod
        def helper(values):
            try:
                return sorted(values)[0]
            except IndexError as error:
                return str(error)
    '''
)


def rules(source: str) -> set[str]:
    return {v.rule for v in check_source(textwrap.dedent(source)).violations}


def test_a_plain_mechanism_passes_and_names_its_class():
    report = check_source(GOOD)
    assert report.ok, report.summary()
    assert report.class_name == "Good"


@pytest.mark.parametrize("entry", list_library(), ids=lambda e: e.name)
def test_reference_mechanisms_pass(entry):
    report = check_source(entry.source)
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    "statement",
    ["import os", "import subprocess", "from socket import socket", "import importlib", "from . import x", "import numpy.lib", "from numpy import load", "from math import *"],
)
def test_imports_outside_the_allowlist_are_refused(statement):
    report = check_source(f"{statement}\nclass A:\n    pass\n")
    assert not report.ok
    assert report.violations[0].line == 1
    assert report.violations[0].rule == "import"


@pytest.mark.parametrize(
    "expression",
    [
        "open('/etc/passwd').read()",
        "eval('1')",
        "exec('x = 1')",
        "compile('1', 'f', 'eval')",
        "__import__('os')",
        "globals()",
        "locals()",
        "vars(self)",
        "getattr(self, 'x')",
        "setattr(self, 'x', 1)",
        "delattr(self, 'x')",
        "breakpoint()",
        "input()",
        "memoryview(b'x')",
        "type('X', (), {})",
        "dir(self)",
    ],
)
def test_dangerous_builtins_are_refused(expression):
    source = f"class A:\n    def plan(self, ctx):\n        return {expression}\n"
    report = check_source(source)
    assert not report.ok
    assert 3 in {v.line for v in report.violations}


@pytest.mark.parametrize(
    "expression",
    [
        "self.__class__",
        "().__class__.__base__.__subclasses__()",
        "self.plan.__globals__",
        "ctx.__dict__",
    ],
)
def test_dunder_attribute_access_is_refused(expression):
    assert "dunder" in rules(f"class A:\n    def plan(self, ctx):\n        return {expression}\n")


@pytest.mark.parametrize(
    "expression",
    [
        "(x for x in ()).gi_frame.f_back.f_globals",
        "np.load('x.npy')",
        "np.lib.stride_tricks.as_strided",
        "np.zeros(3).tofile('x')",
        "np.zeros(3).ctypes",
        "np.random.default_rng(0).bit_generator.cffi",
        "random._os",
        "json.dump({}, None)",
    ],
)
def test_frames_files_and_private_module_attributes_are_refused(expression):
    source = f"import json\nimport random\nimport numpy as np\nclass A:\n    def plan(self, ctx):\n        return {expression}\n"
    assert not check_source(source).ok


def test_defining_dunders_other_than_init_is_refused():
    source = "class A:\n    def __init__(self):\n        pass\n    def __getattr__(self, name):\n        return 1\n"
    report = check_source(source)
    assert [(v.line, v.rule) for v in report.violations] == [(4, "dunder")]


def test_exactly_one_top_level_class():
    assert "class" in rules("X = 1\n")
    assert "class" in rules("class A:\n    pass\nclass B:\n    pass\n")


@pytest.mark.parametrize(
    "statement",
    ["print('hi')", "X = compute()", "for i in range(3):\n    pass", "def helper():\n    return 1", "if True:\n    X = 1", "X = [i for i in range(10)]"],
)
def test_nothing_executable_at_module_level(statement):
    assert "top-level" in rules(f"{statement}\nclass A:\n    pass\n")


def test_class_body_holds_only_attributes_and_methods():
    assert "class-body" in rules("class A:\n    for i in range(3):\n        pass\n")


def test_class_may_not_use_metaclass_or_base_or_foreign_decorators():
    assert "class" in rules("import typing\nclass A(typing.NamedTuple):\n    pass\n")
    assert "class" in rules("class A(metaclass=object):\n    pass\n")
    assert "class" in rules("import functools\n@functools.lru_cache\nclass A:\n    pass\n")
    assert check_source("from dataclasses import dataclass\n@dataclass\nclass A:\n    x: int = 0\n").ok


def test_async_code_is_refused():
    assert "async" in rules("class A:\n    async def plan(self, ctx):\n        return None\n")


def test_syntax_error_reports_its_line():
    report = check_source("class A:\n    def plan(self ctx):\n        pass\n")
    assert [(v.line, v.rule) for v in report.violations] == [(2, "syntax")]


def test_size_limits():
    assert "size" in {v.rule for v in check_source("x" * 30_000).violations}
    assert "size" in {v.rule for v in check_source("class A:\n" + "    x = 1\n" * 500).violations}
    deep = "class A:\n    def plan(self, ctx):\n        return " + "1 + " * 200 + "1\n"
    assert "size" in {v.rule for v in check_source(deep).violations}


def test_block_nesting_limit():
    body = "class A:\n    def plan(self, ctx):\n"
    for depth in range(8):
        body += "        " + "    " * depth + "if ctx:\n"
    body += "        " + "    " * 8 + "pass\n"
    report = check_source(body, PolicyLimits(max_block_nesting=6))
    assert "nesting" in {v.rule for v in report.violations}


def test_every_violation_is_reported_with_its_line_in_order():
    source = "import os\nclass A:\n    def plan(self, ctx):\n        x = eval('1')\n        return self.__dict__\n"
    report = check_source(source)
    assert [v.line for v in report.violations] == [1, 4, 5]
    assert "line 4" in report.summary()
    assert report.to_json()["ok"] is False


def test_non_text_input_is_a_violation_not_a_crash():
    assert not check_source(b"class A: pass").ok  # type: ignore[arg-type]
    assert not check_source("class A:\n    x = '\x00'\n").ok


# -- issue 15, finding 1: bypasses of the old policy with allowed modules (each passed it) ------------

BYPASSES = {
    # copied json's module globals (with the real builtins and `codecs`) into the mechanism's globals
    "update_wrapper": (
        "import functools\nimport json\nclass M:\n    def plan(self, ctx):\n"
        "        functools.update_wrapper(M.plan, json.loads, assigned=(), updated=('globals',))\n"
        "        return {'guidance': codecs.open('/etc/hostname').read()}\n",
        {"import", "forbidden-name"},
    ),
    # evaluated the string annotation with the real builtins
    "get_type_hints": (
        "import typing\nclass M:\n    def plan(self, ctx):\n"
        "        def f(x: \"open('/etc/hostname').read()\"):\n            return x\n"
        "        return {'guidance': str(typing.get_type_hints(f, globalns={}))}\n",
        {"module-attribute", "annotation"},
    ),
    # read the worker's internals through a format field
    "format": (
        "class M:\n    def plan(self, ctx):\n        return {'guidance': '{0.plan.__func__.__globals__}'.format(self)}\n",
        {"format"},
    ),
    # a module alias evaded the numpy I/O check
    "numpy_alias": (
        "import numpy\nclass M:\n    def plan(self, ctx):\n        np = numpy\n        np.save('/tmp/x.npy', np.zeros(2))\n",
        {"module-alias"},
    ),
    # nested classes were not checked: a base from a module, a metaclass
    "nested_class": (
        "import json\nclass M:\n    class Decoder(json.JSONDecoder, metaclass=object):\n        pass\n"
        "    def plan(self, ctx):\n        return None\n",
        {"class", "module-attribute"},
    ),
}


@pytest.mark.parametrize("name", list(BYPASSES))
def test_the_bypasses_of_finding_1_are_refused(name):
    source, expected = BYPASSES[name]
    assert expected <= rules(source), check_source(source).summary()


@pytest.mark.parametrize(
    "statement",
    ["m = math", "self.m = math", "x = [math]", "x = {'m': math}", "return math", "print(math)", "x = np.random",
     "return (np.random, 1)", "y = random_module", "x = np if ctx else None"],
)
def test_modules_are_used_only_as_module_name(statement):
    source = (f"import math\nimport numpy as np\nfrom numpy import random as random_module\n"
              f"class A:\n    def plan(self, ctx):\n        {statement}\n")
    assert "module-alias" in rules(source)


@pytest.mark.parametrize(
    "expression",
    ["math.sqrt(2.0)", "np.random.default_rng(0).random()", "np.linalg.norm(np.zeros(2))", "random_module.rand()",
     "sqrt(4.0)", "[math.pi, np.pi]", "sorted([2, 1], key=math.fabs)"],
)
def test_allowlisted_names_of_modules_pass(expression):
    source = (f"import math\nimport numpy as np\nfrom numpy import random as random_module\nfrom math import sqrt\n"
              f"class A:\n    def plan(self, ctx):\n        return {expression}\n")
    assert check_source(source).ok, check_source(source).summary()


@pytest.mark.parametrize(
    "expression",
    ["math.nonexistent", "json.load", "np.save", "np.lib", "random.SystemRandom()", "np.random.bit_generator",
     "collections.abc", "re.purge()", "statistics.sqrt(4)"],
)
def test_names_outside_a_modules_allowlist_are_refused(expression):
    source = (f"import collections\nimport json\nimport math\nimport random\nimport re\nimport statistics\n"
              f"import numpy as np\nclass A:\n    def plan(self, ctx):\n        return {expression}\n")
    assert "module-attribute" in rules(source)


@pytest.mark.parametrize("statement", ["import numpy.lib", "from json import load", "from functools import partial",
                                       "from typing import get_type_hints", "import typing.re", "from dataclasses import make_dataclass"])
def test_imports_of_names_outside_the_allowlist_are_refused(statement):
    assert "import" in rules(f"{statement}\nclass A:\n    pass\n")


@pytest.mark.parametrize("statement", ["math.pi = 3", "del math.pi", "Counter.most_common = len", "math.x += 1"])
def test_modules_and_imported_names_are_read_only(statement):
    source = f"import math\nfrom collections import Counter\nclass A:\n    def plan(self, ctx):\n        {statement}\n"
    assert "module-write" in rules(source)


@pytest.mark.parametrize("statement", ["math = 3", "for np in []:\n            pass", "def helper(math):\n            pass"])
def test_imported_names_are_not_rebound(statement):
    source = f"import math\nimport numpy as np\nclass A:\n    def plan(self, ctx):\n        {statement}\n"
    assert "import-rebound" in rules(source)


def test_methods_and_class_attributes_may_share_a_modules_name():
    source = "import random\nclass A:\n    random = 3\n    def json(self):\n        return random.random()\n"
    assert check_source(source).ok, check_source(source).summary()


@pytest.mark.parametrize(
    "expression",
    ["'{0.x}'.format(self)", "'{0[k]}'.format(ctx)", "'{x.y}'.format(x=self)", "'{:{0.x}}'.format(1, self)",
     "'{a[0]}'.format_map(ctx)", "template.format(self)", "str.format('{}', 1)",
     "f'{ctx}'.format(1)", "'{0.x'.format(self)"],
)
def test_format_strings_that_reach_attributes_or_items_are_refused(expression):
    source = f"class A:\n    def plan(self, ctx, template='{{}}'):\n        return {expression}\n"
    assert "format" in rules(source)


@pytest.mark.parametrize("expression", ["'{} {}'.format(1, 2)", "'{0:>{1}}'.format('x', 3)", "'{name!r}'.format(name=1)",
                                        "self.format(ctx)",
                                        "f'{ctx!r:>10}'", "'%(a)s' % {'a': 1}"])
def test_plain_format_strings_pass(expression):
    source = f"class A:\n    def plan(self, ctx):\n        return {expression}\n"
    assert check_source(source).ok, check_source(source).summary()


@pytest.mark.parametrize(
    "nested",
    ["class Inner(dict):\n        pass", "class Inner(metaclass=object):\n        pass",
     "@staticmethod\n    class Inner:\n        pass", "class Inner:\n        for i in range(3):\n            pass",
     "class Inner:\n        def __getattr__(self, name):\n            return 1"],
)
def test_nested_classes_follow_the_rules_of_the_mechanism_class(nested):
    source = f"class A:\n    {nested}\n    def plan(self, ctx):\n        return None\n"
    assert rules(source) & {"class", "class-body", "dunder"}, check_source(source).summary()


def test_nested_functions_and_classes_inside_methods_are_checked_too():
    source = ("class A:\n    def plan(self, ctx):\n        class Local(dict):\n            pass\n"
              "        @unknown_decorator\n        def inner():\n            return open('x')\n        return inner\n")
    assert {"class", "decorator", "forbidden-name", "undefined-name"} <= rules(source)


def test_method_decorators_are_limited_to_the_builtin_ones():
    ok = ("class A:\n    @property\n    def x(self):\n        return 1\n    @x.setter\n    def x(self, value):\n"
          "        pass\n    @staticmethod\n    def s():\n        return 2\n    @classmethod\n    def c(cls):\n        return 3\n")
    assert check_source(ok).ok, check_source(ok).summary()
    assert "decorator" in rules("import math\nclass A:\n    @math.sqrt\n    def x(self):\n        return 1\n")


def test_undefined_names_are_refused_with_a_message_for_the_llm():
    report = check_source("class A:\n    def plan(self, ctx):\n        return codecs_module.open('x')\n")
    assert [v.rule for v in report.violations] == ["undefined-name"]
    assert "'codecs_module' is not defined" in report.summary()


def test_string_annotations_are_refused():
    assert "annotation" in rules("from typing import List\nclass A:\n    x: List['int'] = None\n")
    assert "annotation" in rules("class A:\n    def plan(self, ctx) -> 'dict':\n        return None\n")
    assert check_source("from __future__ import annotations\nclass A:\n    def plan(self, ctx: dict) -> dict:\n        return {}\n").ok


@pytest.mark.parametrize("signature", ["plan(self)", "screen(self, ctx)", "accept(self, ctx, result)", "observe(self)",
                                       "plan(self, ctx, extra)", "propose(self)", "plan(self, ctx, *, flag)"])
def test_hooks_must_take_their_arguments(signature):
    assert "hook-signature" in rules(f"class A:\n    def {signature}:\n        return None\n")


@pytest.mark.parametrize("signature", ["plan(self, ctx)", "propose(self, ctx)", "screen(self, ctx, candidates)",
                                       "accept(self, ctx, result, default)", "plan(self, ctx, extra=None)", "plan(self, *args)"])
def test_hook_signatures_that_fit_pass(signature):
    assert check_source(f"class A:\n    def {signature}:\n        return None\n").ok


def test_a_trusted_modules_exports_are_read_from_its_all_without_importing_it(tmp_path):
    helpers = tmp_path / "helpers.py"
    helpers.write_text("raise SystemExit('never imported')\n__all__ = ['untried', '_hidden']\n")
    assert trusted_module_names(helpers) == frozenset({"untried"})
    allowlist = build_allowlist({"helpers": str(helpers)})
    source = "import helpers as h\nfrom helpers import untried\nclass A:\n    def plan(self, ctx):\n        return untried(h.untried)\n"
    assert check_source(source, allowlist=allowlist).ok
    assert "module-attribute" in {v.rule for v in check_source(source.replace("h.untried", "h.other"), allowlist=allowlist).violations}
    assert "import" in {v.rule for v in check_source(source, allowlist=build_allowlist({})).violations}  # without it, no import
    (tmp_path / "bad.py").write_text("__all__ = names()\n")
    with pytest.raises(ValueError, match="literal list"):
        trusted_module_names(tmp_path / "bad.py")


def test_the_trusted_modules_next_to_the_policy_are_found(tmp_path):
    assert trusted_module_paths(tmp_path) == {}
    (tmp_path / "helpers.py").write_text("__all__ = []\n")
    assert trusted_module_paths(tmp_path) == {"helpers": str(tmp_path / "helpers.py")}


# -- issue 23: attributes read by names held in strings ---------------------------------------------

def method(body: str, header: str = "") -> str:
    return header + "class A:\n    def plan(self, ctx):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8) + "\n"


NAME_IN_A_STRING = {
    # `case C(k=v)` reads subject.k with getattr: every one of these passed the policy before issue 23
    "match-format": ("match '{0.__class__}':\n    case object(format=fill):\n        return fill(self)", "match-class"),
    "match-dunder": ("match ():\n    case object(__class__=c):\n        return c", "match-class"),
    "match-builtins": ("match len:\n    case object(__self__=real):\n        return real", "match-class"),
    "match-frame": ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    match e:\n        case object(__traceback__=t):\n"
                    "            return t", "match-class"),
    "match-keyword-on-builtin": ("match 1:\n    case int(real=r):\n        return r", "match-class"),
    "match-keyword-plain": ("match self:\n    case object(plan=p):\n        return p", "match-class"),
    # positional sub-patterns read the attributes named by the class's __match_args__
    "match-args-own-dataclass": ("match ctx:\n    case Point(x):\n        return x", "match-class"),
    "match-class-from-module": ("match ctx:\n    case np.ndarray():\n        return 1", "match-class"),
    "match-two-positional": ("match ctx:\n    case str(a, b):\n        return a", "match-class"),
    "match-rebound-builtin": ("str = object\nmatch ctx:\n    case str(x):\n        return x", "match-class"),
    "match-rest-dunder": ("match ctx:\n    case {**__dict__}:\n        return 1", "dunder"),
    # hasattr reads the attribute too (and runs properties): only a literal plain name
    "hasattr-dunder": ("return hasattr(self, '__class__')", "hasattr"),
    "hasattr-forbidden": ("return hasattr(ctx, 'gi_frame')", "hasattr"),
    "hasattr-variable": ("name = 'plan'\nreturn hasattr(self, name)", "hasattr"),
    "hasattr-alias": ("has = hasattr\nreturn has(self, 'plan')", "hasattr"),
    # typing makes forward references from strings: code compiled now, evaluated with real builtins later
    "typing-forward-reference": ("return typing.Optional[\"__import__('os')\"]", "annotation"),
}
HEADER = "import typing\nimport numpy as np\nfrom dataclasses import dataclass\n"


@pytest.mark.parametrize("name", list(NAME_IN_A_STRING))
def test_attributes_read_by_a_name_in_a_string_are_refused(name):
    body, rule = NAME_IN_A_STRING[name]
    source = method(body, HEADER)
    if "Point" in body:
        source = source.replace("class A:", "@dataclass\nclass Point:\n    x: int = 0\n\n\nclass A:\n    point = Point", 1)
    assert rule in {v.rule for v in check_source(source).violations}, check_source(source).summary()


@pytest.mark.parametrize("body", [
    "match ctx:\n    case int(x) | float(x):\n        return x\n    case str():\n        return 0",
    "match ctx:\n    case {'best': [first, *rest], **others}:\n        return first\n    case [1, 2] | (3, 4):\n        return 2",
    "match ctx.get('mode'):\n    case math.pi | None:\n        return 1\n    case dict(d) if d:\n        return d",
    "return hasattr(self, 'seen') and hasattr(ctx, 'get')",
    "return typing.Optional[int]",
])
def test_match_hasattr_and_typing_that_read_nothing_by_name_pass(body):
    report = check_source(method(body, "import math\nimport typing\n"))
    assert report.ok, report.summary()
