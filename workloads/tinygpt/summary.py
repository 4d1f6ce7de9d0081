"""Parse the summary block that harness.py prints at the end of a run (pure, no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SEPARATOR = "---"
REQUIRED = ("val_bpb", "eval_bytes", "steps", "tokens", "train_seconds", "num_params", "peak_memory_mb")
MAX_KEY_LENGTH = 40


class SummaryError(ValueError):
    """The output holds no valid summary block, or more than one."""


@dataclass(frozen=True)
class Summary:
    val_bpb: float
    eval_bytes: int
    steps: int
    tokens: int
    train_seconds: float
    num_params: int
    peak_memory_mb: float
    fields: dict[str, str]
    train_flops: int | None = None  # 6 x trainable params x tokens; absent or "n/a" in summaries that lack it
    budget_mode: str | None = None  # flops | steps | time


def _block_starts(lines: list[str]) -> list[int]:
    """Indices of `---` lines followed by a `val_bpb:` line: the only shape that counts as a summary."""
    return [
        i for i, line in enumerate(lines[:-1]) if line.strip() == SEPARATOR and lines[i + 1].startswith("val_bpb:")
    ]


def _fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key or len(key) > MAX_KEY_LENGTH or " " in key:
            break  # the block ends at the first line that is not `key: value`
        fields[key] = value.strip()
    return fields


def _number(fields: dict[str, str], key: str, kind: type):
    text = fields.get(key)
    if text is None:
        raise SummaryError(f"summary has no {key!r} line")
    try:
        value = kind(text)
    except ValueError:
        raise SummaryError(f"summary {key!r} is not a{'n integer' if kind is int else ' number'}: {text[:40]!r}") from None
    if kind is float and not math.isfinite(value):
        raise SummaryError(f"summary {key!r} is {text!r}: the run diverged")
    return value


def parse_summary(output: str) -> Summary:
    """The one summary block in `output`; SummaryError if there is none, several, or a field is missing."""
    lines = output.splitlines()
    starts = _block_starts(lines)
    if not starts:
        raise SummaryError("the run printed no summary block ('---' followed by 'val_bpb: ...')")
    if len(starts) > 1:
        raise SummaryError(f"the run printed {len(starts)} summary blocks; exactly one is allowed")
    fields = _fields(lines[starts[0] + 1 :])
    floats = {"val_bpb", "train_seconds", "peak_memory_mb"}
    values = {key: _number(fields, key, float if key in floats else int) for key in REQUIRED}
    train_flops = None if fields.get("train_flops", "n/a") == "n/a" else _number(fields, "train_flops", int)
    return Summary(**values, fields=fields, train_flops=train_flops, budget_mode=fields.get("budget_mode"))
