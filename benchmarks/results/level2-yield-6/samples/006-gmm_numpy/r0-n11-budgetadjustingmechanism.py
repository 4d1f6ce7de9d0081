"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class Budgetadjustingmechanism:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "budgetadjustingmechanism"

    def __init__(self):
        self.configs = defaultdict(list)  # keys of recently run configurations, each with list of experiment indices
        self.moves = defaultdict(list)  # "NAME=value" of recent single-parameter moves, each with list of experiment indices
        self.discarded = defaultdict(list)  # "NAME=value" of parameters changed by recently discarded experiments, each with list of experiment indices
        self.current_config = None  # current configuration to evaluate
        self.current_value = None  # value of current configuration to evaluate
        self.last_value = None  # value of last experiment in current configuration to evaluate
        self.current_score = None  # current score of current configuration to evaluate
        self.budget = None  # current budget of experiments to evaluate

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
        avoid = []
        for candidate in candidates:
            if self.is_tabu(candidate):
                avoid.append(candidate["changes"])
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Avoiding repeated configurations and moves: " + ", ".join(" ".join(av) for av in avoid) + "."}

    def observe(self, ctx, result):
        self.configs[result["config"]].append(ctx["iteration"])
        self.current_config = result["config"]
        self.current_value = result["value"]
        self.last_value = self.current_value
        self.current_score = self.current_value / (self.budget or 1)
        self.budget = result["budget"]
