"""Static policy of mechanism source: what is allowed, what is refused, and that every violation has its line."""

from __future__ import annotations

import textwrap

import pytest

from mechanisms.library import list_library
from mechanisms.policy import PolicyLimits, check_source

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
