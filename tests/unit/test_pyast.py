"""The process-wide ast.parse lock (CPython 3.11 gh-106905) is installed by our parsing modules and still parses."""

from __future__ import annotations

import ast
import threading

import search.pyast as pyast
import workloads.hyperblock  # noqa: F401 - importing our parser installs the lock


def test_importing_our_parser_routes_every_ast_parse_through_the_lock() -> None:
    assert ast.parse is pyast._locked_parse
    assert isinstance(ast.parse("x = 1", mode="exec"), ast.Module)


def test_a_parse_waits_while_another_thread_holds_the_lock() -> None:
    finished = threading.Event()
    with pyast._PARSE_LOCK:
        worker = threading.Thread(target=lambda: (ast.parse("y = 2"), finished.set()))
        worker.start()
        assert not finished.wait(0.05)  # blocked behind the lock held here
    worker.join(5)
    assert finished.is_set()


def test_install_is_idempotent_and_keeps_the_original_parser() -> None:
    pyast.install_parse_lock()
    pyast.install_parse_lock()
    assert ast.parse is pyast._locked_parse and pyast._unlocked_parse is not pyast._locked_parse
    assert pyast.parse_python("def f():\n    return 1\n", filename="<t>").body[0].name == "f"
