"""The simulated benefit through the real sandboxed runtime (mechanisms/benefit.py): each arm's mechanisms run in the
sandbox as live, their state rebuilt from the trace for every seed."""

from __future__ import annotations

from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.benefit import next_config, simulated_benefit
from mechanisms.replay import ReplaySource
from search.config import SearchConfig
from search.simulate import SimulationSettings
from tests.unit.test_simulate import SPACE, TRACE

DOWNHILL = '''class Downhill:
    """Propose one step towards the landscape's optimum, before the LLM."""

    name = "downhill"

    def __init__(self):
        self.seen = 0

    def propose(self, ctx):
        current = ctx["current"]["config"]
        step = {"LR": min(1.0, current["LR"] * 2), "DEPTH": max(2, current["DEPTH"] - 1), "OPT": "adam"}
        return {"candidates": [{"changes": step, "reason": "downhill"}], "skip_llm": True}

    def observe(self, ctx, result):
        self.seen += 1
'''

WATCHER = '''class Watcher:
    """Counts what it sees and never says anything: inert."""

    name = "watcher"

    def __init__(self):
        self.seen = 0

    def observe(self, ctx, result):
        self.seen += 1
'''

SETTINGS = SimulationSettings(iterations=3, seeds=4)


def benefit(source: str, name: str, active: ActiveSet | None = None):
    return simulated_benefit(ActiveMechanism.from_source(name, source, version="library", origin="library"),
                             active or ActiveSet(), TRACE, SPACE, ReplaySource(meta_run_id="unit"),
                             next_config(TRACE, SearchConfig()), settings=SETTINGS)


def test_a_helpful_mechanism_in_the_sandbox_beats_the_search_and_an_inert_one_changes_nothing() -> None:
    helpful = benefit(DOWNHILL, "downhill")
    assert helpful.beats_current and helpful.decisions_changed >= SETTINGS.seeds  # its candidates were trained
    inert = benefit(WATCHER, "watcher")
    assert inert.per_seed == [0.0] * SETTINGS.seeds and inert.decisions_changed == 0 and not inert.beats_current


def test_against_itself_already_active_a_mechanism_adds_nothing() -> None:
    active = ActiveSet(mechanisms=[ActiveMechanism.from_source("downhill", DOWNHILL, version="library", origin="library")])
    again = benefit(DOWNHILL, "downhill", active)  # same name: it replaces the active version, same code
    assert again.per_seed == [0.0] * SETTINGS.seeds
