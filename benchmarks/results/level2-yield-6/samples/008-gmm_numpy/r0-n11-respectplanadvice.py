"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
from collections import defaultdict, OrderedDict
import random, math

TENURE = 12  # experiments a configuration or a move stays tabu


class Respectplanadvice:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "respectplanadvice"

    def __init__(self):
        self.configs = defaultdict(int)  # keys of recently run configurations
        self.moves = defaultdict(str)  # "NAME=value" of recent single-parameter moves
        self.discarded = defaultdict(int)  # parameters changed by recently discarded experiments

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
        keep = []
        for candidate in candidates:
            if not self.is_tabu(candidate):
                keep.append(candidate)
        return keep if keep else None

    def observe(self, ctx, result):
        new_config = result["config"]
        new_value = result["value"]
        self.configs[new_config] += 1
        self.discarded[self.move_key(result["changes"].keys()[0], result["changes"].values()[0])] += 1
        if len(self.configs) > TENURE:
            self.configs.popitem(last=False)
        if len(self.moves) > TENURE:
            self.moves.popitem(last=False)
