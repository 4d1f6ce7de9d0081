"""The run summary shows what Level 2 activated with its simulated gain."""

from __future__ import annotations

from rich.console import Console

from bilevel.progress import summary_table
from search.run_spec import MetaRunSummary
from search.trace import LLMUsage


def test_the_summary_shows_the_activated_mechanisms_simulated_gain() -> None:
    gain = {"delta": -0.0123, "ci_low": -0.02, "ci_high": -0.004, "seeds": 16}
    summary = MetaRunSummary(meta_run_id="m", name="n", baseline_value=3.0, best_value=2.9, best_config={}, best_index=1,
                             experiments=2, kept=1, crashes=0, invalid=0, llm=LLMUsage(),
                             mechanisms=[{"name": "pattern_move", "version": "v123", "simulated": gain},
                                         {"name": "tabu", "version": "library"}])
    console = Console(record=True, width=300)
    console.print(summary_table(summary, tracking_uri="sqlite://", prefect_home="/tmp"))
    text = console.export_text()
    assert "pattern_move@v123 (simulated Δ -0.0123, CI -0.02 to -0.004), tabu@library" in text
