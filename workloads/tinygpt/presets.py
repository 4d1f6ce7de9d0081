"""Starting points of the editable script for a machine class: new values and ranges for hyperparameter lines.

The packaged train.py is the CPU benchmark (ranges sized for a 1-thread, steps-budget run). A preset
rewrites whole lines of the hyperparameter block, ranges included, because ranges that suit an H100
(half a million tokens per step) are absurd on one CPU thread, and the reverse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from search.params import ParamKind, ParamSpec, literal_source, number_text
from workloads.hyperblock import ScriptError, parse_params


@dataclass(frozen=True)
class Setting:
    """A new value, and optionally a new [low, high] range, for one hyperparameter."""

    value: object
    low: float | None = None
    high: float | None = None


# Close to karpathy/autoresearch's train.py (DEPTH 8, ASPECT_RATIO 64, HEAD_DIM 128, 2**19 tokens per step,
# Muon, its learning rates and schedule), with bytes instead of BPE tokens, hence a 2048-byte context.
H100: dict[str, Setting] = {
    "DEPTH": Setting(8, 1, 24),
    "ASPECT_RATIO": Setting(64, 16, 128),
    "HEAD_DIM": Setting(128, 32, 256),
    "SEQ_LEN": Setting(2048, 128, 4096),
    "TOTAL_BATCH_SIZE": Setting(2**19, 2**14, 2**21),
    "DEVICE_BATCH_SIZE": Setting(64, 1, 512),
    "OPTIMIZER": Setting("muon"),
    "MATRIX_LR": Setting(0.04),
    "EMBEDDING_LR": Setting(0.6),
    "UNEMBEDDING_LR": Setting(0.004),
    "SCALAR_LR": Setting(0.5),
    "WEIGHT_DECAY": Setting(0.2),
    "ADAM_BETAS": Setting((0.8, 0.95)),
    "WARMUP_RATIO": Setting(0.0),
    "WARMDOWN_RATIO": Setting(0.5),
    "FINAL_LR_FRAC": Setting(0.0),
}

PRESETS: dict[str, dict[str, Setting]] = {"cpu": {}, "h100": H100}


def param_line(spec: ParamSpec) -> str:
    """The block line of `spec`, in the format workloads/hyperblock.py parses."""
    if spec.kind is ParamKind.CHOICE:
        bracket = " [" + ", ".join(spec.choices or ()) + "]"
    elif spec.kind is ParamKind.BOOL:
        bracket = ""
    else:
        bracket = f" [{number_text(spec.low)}, {number_text(spec.high)}]"  # type: ignore[arg-type]
    assignment = f"{spec.name} = {literal_source(spec.value)}"
    return f"{assignment:<27} # {spec.kind.value}{bracket}{' log' if spec.log else ''}: {spec.description}"


def apply_preset(source: str, settings: Mapping[str, Setting]) -> str:
    """`source` with the named hyperparameter lines rewritten; the result is parsed again, so values must fit ranges."""
    specs = {spec.name: spec for spec in parse_params(source)}
    unknown = sorted(set(settings) - set(specs))
    if unknown:
        raise ScriptError(f"preset names unknown hyperparameters: {', '.join(unknown)}")
    lines = source.splitlines(keepends=True)
    for name, setting in settings.items():
        spec = specs[name]
        update: dict[str, object] = {"value": setting.value}
        if setting.low is not None:
            update["low"], update["high"] = setting.low, setting.high
        line = param_line(spec.model_copy(update=update))
        pattern = re.compile(rf"^{name}\s*=")
        matches = [i for i, text in enumerate(lines) if pattern.match(text)]
        if len(matches) != 1:
            raise ScriptError(f"{name}: expected one assignment line, found {len(matches)}")
        lines[matches[0]] = line + "\n"
    rewritten = "".join(lines)
    parse_params(rewritten)  # validates every value against its (new) range
    return rewritten


def preset_source(source: str, preset: str) -> str:
    """The editable script for a named preset ('cpu' is the packaged file unchanged)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown tinygpt preset {preset!r}; available: {', '.join(PRESETS)}")
    return apply_preset(source, PRESETS[preset]) if PRESETS[preset] else source
