"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class ConflictAdvisor:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "conflict_advisor"

    def __init__(self):
        self.configs = set()  # keys of recently run configurations
        self.moves = set()  # "NAME=value" of recent single-parameter moves
        self.discarded = set()  # parameters changed by recently discarded experiments
        self.conflict_counts = defaultdict(int)  # counts of conflicts per configuration

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
        for candidate in candidates:
            for name, value in candidate["changes"].items():
                if self.is_tabu({"config": candidate["config"], "changes": {name: value}}):
                    return {"reject": True, "reason": "Recent configuration or move already proposed: " + self.move_key(name, value)}
        return None

    def observe(self, ctx, result):
        self.configs.add(h.config_key(result["config"]))
        self.moves.add(self.move_key(result["config"]["name"], result["config"]["value"]))
        for param_name, value in result["changes"].items():
            self.conflict_counts[h.config_key(result["config"])][param_name] += 1
        self.discarded.update(result["changes"])
