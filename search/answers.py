"""Decoding untrusted LLM answers: bounded in size and depth, JSON only (no NaN, no duplicate keys), a Markdown
fence tolerated."""

from __future__ import annotations

from typing import Any

from search.safe_json import loads_bounded

MAX_ANSWER_CHARS = 20_000
MAX_ANSWER_DEPTH = 32  # proposals, Level 1.5 and research answers nest 3-4 levels


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
        return loads_bounded(stripped[start : end + 1], max_bytes=4 * limit, max_depth=MAX_ANSWER_DEPTH)
    except ValueError as error:
        raise ValueError(f"the answer is refused: {error}") from None
