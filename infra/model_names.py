"""The model string, checked offline before any service starts: one of our providers (`local/...`, `scripted/...`)
or a provider litellm knows. litellm's provider list and price map are read from the installed package's files,
without importing litellm (seconds of CPU), so a typo fails in milliseconds.

A known provider with an unknown model name cannot be checked offline: that is the provider's to refuse.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path

OUR_PROVIDERS = ("local", "scripted")
EXAMPLES = "e.g. local/qwen2.5-coder-1.5b, openai/gpt-4o-mini, ollama/llama3"
_ENUM_MEMBER = re.compile(r'^\s+[A-Z0-9_]+\s*=\s*"([^"]+)"', re.MULTILINE)


def _litellm_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


@functools.cache
def litellm_providers() -> frozenset[str]:
    """The values of litellm's LlmProviders enum (its `provider_list`), read from its source."""
    folder = _litellm_dir()
    if folder is None:
        return frozenset()
    text = (folder / "types" / "utils.py").read_text(encoding="utf-8")
    start = text.index("class LlmProviders(")
    end = text.find("\nclass ", start + 1)
    return frozenset(_ENUM_MEMBER.findall(text[start:end if end > 0 else len(text)]))


@functools.cache
def litellm_bare_models() -> frozenset[str]:
    """Model names litellm resolves without a provider prefix (the keys of its bundled price map)."""
    folder = _litellm_dir()
    if folder is None:
        return frozenset()
    try:
        data = json.loads((folder / "model_prices_and_context_window_backup.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(name for name in data if "/" not in name)


def check_model(model: str) -> str:
    """`model` unchanged when it can be served; ValueError (one line) naming what is wrong otherwise."""
    name = model.strip()
    if not name or name != model or any(ch.isspace() for ch in name):
        raise ValueError(f"model {model!r} is not a model string ({EXAMPLES})")
    provider, slash, rest = name.partition("/")
    if slash:
        if not rest:
            raise ValueError(f"model {model!r} names the provider {provider!r} but no model ({EXAMPLES})")
        if provider in OUR_PROVIDERS:
            return model
        known = litellm_providers()
        if known and provider not in known:
            raise ValueError(f"model {model!r}: unknown provider {provider!r}; use local/..., scripted/... or one of "
                             f"litellm's providers ({EXAMPLES}; list: https://docs.litellm.ai/docs/providers)")
        return model
    bare = litellm_bare_models()
    if bare and name not in bare:
        raise ValueError(f"model {model!r} names no provider and is not a model litellm knows by name: write "
                         f"PROVIDER/MODEL ({EXAMPLES})")
    return model
