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
        self.configs = defaultdict(list)  # keys of recently run configurations, each with list of moves
        self.discarded = set()  # parameters changed by recently discarded experiments

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        if h.config_key(candidate["config"]) in self.configs:
            for move in self.configs[h.config_key(candidate["config"])]:
                if move in self.discarded:
                    return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.discarded for m in moves)

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        for candidate in candidates:
            if self.is_tabu(candidate):
                return None
        return {"guidance": "Not tabu: " + ", ".join([c["changes"] for c in candidates]) + "."}

    def observe(self, ctx, result):
        self.configs = (self.configs + [h.config_key(result["config"])])[-TENURE:]
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves = (self.moves + moves)[-TENURE:]
        if not result["kept"]:
            self.discarded = (self.discarded + list(result["changes"]))[-TENURE:]
