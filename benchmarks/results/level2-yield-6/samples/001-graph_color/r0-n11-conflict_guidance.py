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
        self.configs = defaultdict(int)  # keys of recently run configurations with counts
        self.moves = defaultdict(int)  # "NAME=value" of recent single-parameter moves with counts
        self.discarded = defaultdict(int)  # parameters changed by recently discarded experiments with counts

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        if h.config_key(candidate["config"]) in self.configs:
            self.configs[h.config_key(candidate["config"])] += 1
            return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        self.moves[tuple(sorted(moves))] = 1
        return len(moves) > 0 and all(self.moves[m] >= 3 for m in moves)

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        for candidate in candidates:
            if self.is_tabu(candidate):
                return {"reject": True, "reason": "Recent conflict: " + candidate["hypothesis"]}

    def observe(self, ctx, result):
        self.configs = (self.configs + [h.config_key(result["config"])])[-TENURE:]
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves = (self.moves + moves)[-TENURE:]
        if not result["kept"]:
            self.discarded = (self.discarded + list(result["changes"]))[-TENURE:]
