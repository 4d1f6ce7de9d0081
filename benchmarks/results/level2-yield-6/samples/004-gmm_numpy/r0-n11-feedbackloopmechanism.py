"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class Feedbackloopmechanism:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "feedbackloopmechanism"

    def __init__(self):
        self.configs = defaultdict(list)  # keys of recently run configurations, each is a list
        self.moves = defaultdict(list)  # keys of recent single-parameter moves, each is a list
        self.discarded = defaultdict(set)  # parameters changed by recently discarded experiments, each is a set

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        if h.config_key(candidate["config"]) in self.configs:
            return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.moves for m in moves)

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if len(self.discarded[p]) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        new_candidates = [c for c in candidates if not self.is_tabu(c)]
        if not new_candidates:
            return {"reject": True, "reason": "All recent candidates are tabu"}
        return {"n_candidates": len(new_candidates), "focus": ["focus", "focus", "focus", "focus"], "temperature": 1.0}

    def observe(self, ctx, result):
        config = result.get("config", {})
        for k, v in config.items():
            self.configs[k].append(h.config_key({"v": v}))
        self.moves[k].append(h.move_key(k, v))
