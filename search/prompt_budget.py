"""How many tokens a prompt may take: the model's context window less the answer and a margin, and a conservative
token estimate of chat messages that needs no tokenizer (pure; the prompt builders shrink to fit it)."""

from __future__ import annotations

from collections.abc import Sequence

# The estimate counts every digit as a token and every other character as a third of one. Why not the model's own
# tokenizer: it lives with the local model (behind the runtime's lock, and another model has another one), while
# this estimate is pure and model-agnostic. Why this form: Qwen2.5's tokenizer splits numbers digit by digit, and
# proposal prompts are dense with numbers, so a flat chars-per-token rate is either far off on short prompts or
# unsafe on long ones (measured 2.36-3.00 characters per token). Against Qwen's real count (chat template
# included) on every proposal prompt of four recorded tinygpt runs (91 prompts, block and literal sites, 1495-4103
# tokens) this estimate was 1.005-1.15 times the truth: never under, so a prompt it admits fits.
DIGIT_TOKENS = 1.0
TEXT_CHARS_PER_TOKEN = 3.0
MESSAGE_TOKENS = 4  # a chat template's role markers around each message
PROMPT_TOKENS = 3  # the assistant header that follows the last message
# Room for one re-ask of a typical answer: the refused answer (a proposal is 30-70 tokens) and the refusal (at most
# 300 characters). A longer re-ask that overflows is refused like a bad answer (tasks/llm_call.py).
REASK_MARGIN_TOKENS = 128


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """An upper estimate of the prompt tokens `messages` take, chat template included."""
    total = float(PROMPT_TOKENS)
    for message in messages:
        text = str(message.get("content", ""))
        digits = sum(char.isdigit() for char in text)
        total += MESSAGE_TOKENS + digits * DIGIT_TOKENS + (len(text) - digits) / TEXT_CHARS_PER_TOKEN
    return int(total) + 1


def prompt_budget(context_tokens: int | None, answer_tokens: int) -> int | None:
    """The tokens a first prompt may take in a context of `context_tokens` (None: unknown, no limit), leaving room
    for an answer of `answer_tokens` and one re-ask."""
    if context_tokens is None:
        return None
    return max(0, context_tokens - answer_tokens - REASK_MARGIN_TOKENS)
