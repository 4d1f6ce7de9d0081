"""The process-wide ast.parse lock (CPython 3.11 gh-106905) is installed by our parsing modules and still parses."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import search.pyast as pyast

ROOT = Path(__file__).resolve().parents[2]


def test_importing_our_parser_alone_routes_every_ast_parse_through_the_lock() -> None:
    check = ("import ast; original = ast.parse; import workloads.hyperblock; "
             "assert ast.parse is not original and ast.parse.__wrapped__ is original; "
             "assert isinstance(ast.parse('x = 1'), ast.Module)")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_parse_waits_while_another_thread_holds_the_lock() -> None:
    started, finished = threading.Event(), threading.Event()

    def parse() -> None:
        started.set()
        ast.parse("y = 2")
        finished.set()

    with pyast._PARSE_LOCK:
        worker = threading.Thread(target=parse)
        worker.start()
        assert started.wait(5)
        assert not finished.wait(0.2)  # without the lock this parse takes microseconds
    worker.join(5)
    assert finished.is_set()


def test_install_is_idempotent_and_keeps_the_original_parser() -> None:
    pyast.install_parse_lock()
    pyast.install_parse_lock()
    assert ast.parse is pyast._locked_parse and pyast._unlocked_parse is not pyast._locked_parse
    assert pyast.parse_python("def f():\n    return 1\n", filename="<t>").body[0].name == "f"
