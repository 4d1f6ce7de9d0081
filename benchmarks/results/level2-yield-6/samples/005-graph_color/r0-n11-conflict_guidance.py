"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class ConflictGuidance:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "conflict_guidance"

    def __init__(self):
        self.configs = defaultdict(list)  # keys of recently run configurations, each with list of parameter changes
        self.moves = defaultdict(list)  # "NAME=value" of recent single-parameter moves, each with list of parameter changes
        self.discarded = defaultdict(list)  # "NAME=value" of recently discarded experiments
        self.current_config = None  # last successfully trained configuration
        self.current_move = None  # last successfully trained move

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        config_changes = self.configs[h.config_key(candidate["config"])]
        move_changes = self.moves[h.move_key(candidate["changes"])]
        return len(config_changes) >= 3 or len(move_changes) >= 3 or candidate["config"] in self.current_config or candidate["changes"] in self.current_move

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        for candidate in candidates:
            if self.is_tabu(candidate):
                return {"reject": True, "reason": "Repeated recently: " + ", ".join([c["changes"][name] for name in candidate["changes"]]) + "."}
        return {"guidance": "Continue to explore untabu candidates."}

    def observe(self, ctx, result):
        self.configs = (self.configs + [h.config_key(result["config"])])[-TENURE:]
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves = (self.moves + moves)[-TENURE:]
        if not result["kept"]:
            self.discarded = (self.discarded + list(result["changes"]))[-TENURE:]
