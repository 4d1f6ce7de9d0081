"""The search configuration that Level 1.5 tunes: frozen parameters, strategy, guidance, sampling."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["explore", "exploit", "balanced"]

STRATEGY_TEXT: dict[str, str] = {
    "explore": "Try parameters and values that have not been tried yet; bold moves are welcome.",
    "exploit": "Refine what worked: small steps around the best configuration, on parameters that already helped.",
    "balanced": "Mix refinements of what worked with occasional untried parameters.",
}


class SearchConfig(BaseModel):
    """How the inner loop searches. Immutable; Level 1.5 returns a new one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    frozen: tuple[str, ...] = ()
    strategy: Strategy = "balanced"
    guidance: str = Field("", max_length=600)
    temperature: float = Field(0.7, ge=0.0, le=1.5)
    n_candidates: int = Field(1, ge=1, le=4, description="Proposals asked per iteration (a screen hook picks one).")
    history_window: int = Field(8, ge=1, le=50, description="Recent experiments shown in the prompt.")
    max_changes: int = Field(4, ge=1, le=8, description="Parameters one proposal may change at once.")
    near_repeat: float = Field(0.05, ge=0.0, le=0.5, description="A candidate within this relative distance of a "
                               "tried configuration is refused like a repeat (0: only exact repeats).")
    mix_temperatures: bool = Field(True, description="Vary the sampling temperature from iteration to iteration.")
    min_improvement: float = Field(0.0, ge=0.0)
    confirm_seed: int | None = None
