"""`ast.parse` serialized across threads: CPython 3.11 can corrupt AST construction under concurrency.

Two threads parsing at once (e.g. two ablation arms applying edits while a third validates a
mechanism) can fail with `SystemError: AST constructor recursion depth mismatch` (cpython
gh-106905, fixed in later releases). Parsing takes microseconds, so one process-wide lock costs
nothing measurable. Every `ast.parse` of ours goes through here.
"""

from __future__ import annotations

import ast
import threading

_PARSE_LOCK = threading.Lock()


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse(source, filename)` under the process-wide parse lock."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename, mode="exec")
