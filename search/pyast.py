"""`ast.parse` serialized across threads, process-wide: CPython 3.11 corrupts AST construction under concurrency.

Two threads parsing at once (two ablation arms applying edits, a third formatting a traceback,
which in 3.11 parses the failing line) can fail with `SystemError: AST constructor recursion depth
mismatch`: the AST converter keeps its depth counter in shared module state (cpython gh-106905;
later releases track it per call). Importing this module replaces `ast.parse` with a locked
wrapper so that the standard library's and other libraries' parses are serialized with ours;
parsing takes microseconds, so the lock costs nothing measurable.
"""

from __future__ import annotations

import ast
import functools
import threading
from typing import Any

_PARSE_LOCK = threading.RLock()  # re-entrant: a finalizer run during a parse may format a traceback
_unlocked_parse = getattr(ast.parse, "__wrapped__", ast.parse)


@functools.wraps(_unlocked_parse)
def _locked_parse(*args: Any, **kwargs: Any) -> Any:
    with _PARSE_LOCK:
        return _unlocked_parse(*args, **kwargs)


def install_parse_lock() -> None:
    """Route every `ast.parse` in this process through the lock (idempotent)."""
    ast.parse = _locked_parse


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse(source, filename)` under the process-wide parse lock."""
    return _locked_parse(source, filename=filename, mode="exec")


install_parse_lock()
