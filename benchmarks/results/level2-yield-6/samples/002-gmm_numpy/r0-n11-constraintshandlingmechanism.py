"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class Constraintshandlingmechanism:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "constraintshandlingmechanism"

    def __init__(self):
        self.configs = defaultdict(list)  # keys of recently run configurations, values are their parameters
        self.moves = defaultdict(list)  # "NAME=value" of recent single-parameter moves
        self.discarded = set()  # parameters changed by recently discarded experiments

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        if h.config_key(candidate["config"]) in self.configs:
            return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.moves for m in moves)

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        discardable = [c for c in candidates if self.is_tabu(c)]
        if not discardable:
            return None
        return discardable

    def observe(self, ctx, result):
        config_key = h.config_key(result["config"])
        self.configs[config_key].extend(result["changes"])
        self.moves[config_key].extend([self.move_key(k, v) for k, v in result["changes"].items()])
        self.discarded.add(result["changes"].get(h.config_key(ctx["best"]), None))
