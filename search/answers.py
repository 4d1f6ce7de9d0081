"""Decoding untrusted LLM answers: bounded in size, JSON only, a Markdown fence tolerated."""

from __future__ import annotations

import json
from typing import Any

MAX_ANSWER_CHARS = 20_000


def extract_json(text: str, limit: int = MAX_ANSWER_CHARS) -> Any:
    """The first JSON object or array in `text`. Raises ValueError with a message an LLM can act on."""
    if not isinstance(text, str):
        raise ValueError(f"expected text, got {type(text).__name__}")
    if len(text) > limit:
        raise ValueError(f"the answer is {len(text)} characters long; the limit is {limit}")
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped[stripped.find("\n") + 1 :] if "\n" in stripped else stripped
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        raise ValueError("the answer contains no JSON object")
    start = min(starts)
    end = stripped.rfind("}" if stripped[start] == "{" else "]")
    if end < start:
        raise ValueError("the JSON in the answer is not closed")
    try:
        return json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as error:
        raise ValueError(f"the answer is not valid JSON: {error.msg} at position {error.pos}") from error
