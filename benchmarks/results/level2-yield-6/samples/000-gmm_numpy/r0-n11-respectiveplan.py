"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h
import random
from collections import defaultdict

TENURE = 12  # experiments a configuration or a move stays tabu


class Respectiveplan:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "respectiveplan"

    def __init__(self):
        # new state variable: track configurations and moves
        self.configs = set()
        self.moves = set()
        # new state variable: track discarded parameters
        self.discarded = set()
        # new state variable: track proposals that have been proposed but not trained
        self.proposals = set()

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        # check if configuration is tabu
        if h.config_key(candidate["config"]) in self.configs:
            return True
        # check if single-parameter moves are tabu
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.moves for m in moves)

    def plan(self, ctx):
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def screen(self, ctx, candidates):
        for candidate in candidates:
            if self.is_tabu(candidate):
                self.proposals.add(candidate["changes"])
        return None  # no more decisions to make

    def observe(self, ctx, result):
        # add new parameters to proposals
        for key, value in result["changes"].items():
            self.proposals.add({key: value})
        # remove proposed parameters from proposals
        for key, value in result["changes"].items():
            self.proposals.remove({key: value})
        # add new configurations to configs
        if h.config_key(result["config"]) not in self.configs:
            self.configs.add(h.config_key(result["config"]))
        # remove configurations from configs
        if h.config_key(result["config"]) in self.configs:
            self.configs.remove(h.config_key(result["config"]))
        # add new moves to moves
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves.update(moves)
        # remove moves from moves
        self.moves.difference_update(moves)
        # add new discarded parameters to discarded
        self.discarded.add(h.config_key(result["config"]))
        # remove discarded parameters from discarded
        self.discarded.difference_update([h.config_key(result["config"])])
