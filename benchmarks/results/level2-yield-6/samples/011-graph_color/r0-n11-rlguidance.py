"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
from collections import defaultdict, Counter
import random, math

TENURE = 12  # experiments a configuration or a move stays tabu


class Rlguidance:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "rlguidance"

    def __init__(self):
        self.configs = defaultdict(list)  # keys of recently run configurations
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
        discard_count = sum(self.is_tabu(c) for c in candidates)
        if discard_count >= len(candidates) - 1:  # skip all candidates if all are tabu
            return {"reject": True, "reason": "All recent candidates are tabu."}
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if avoid:
            return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}
        return {"n_candidates": 4 if discard_count > 0 else len(candidates)}

    def observe(self, ctx, result):
        self.configs[h.config_key(result["config"])].append(result["value"])
        self.moves[h.move_key(result["config"], result["value"])].append(result["value"])
        if result["value"] < self.baseline["value"]:
            self.baseline["value"] = result["value"]
            self.baseline["config"] = result["config"]
        if self.is_tabu(result):
            self.discarded.add(h.config_key(result["config"]))
