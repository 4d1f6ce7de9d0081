"""Tabu search over recent proposals: never re-run a recent configuration or repeat a recent move."""

import json

TENURE = 12  # experiments a configuration or a move stays tabu


class TabuSearch:
    """Tabu search: screen skips candidates that repeat a recent configuration or move; plan names what to avoid."""

    name = "tabu"

    def __init__(self):
        self.configs = []  # canonical keys of recently run configurations
        self.moves = []  # "NAME=value" of recent single-parameter moves
        self.discarded = []  # parameters changed by recently discarded experiments

    def canonical(self, value):
        # 3 and 3.0 are the same value once they have been through JSON
        if isinstance(value, bool) or isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self.canonical(v) for v in value]
        return float(value)

    def config_key(self, config):
        return json.dumps({k: self.canonical(v) for k, v in config.items()}, sort_keys=True)

    def move_key(self, name, value):
        return name + "=" + json.dumps(self.canonical(value))

    def is_tabu(self, candidate):
        if self.config_key(candidate["config"]) in self.configs:
            return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.moves for m in moves)

    def plan(self, ctx):
        if not self.moves:
            return None
        avoid = sorted({p for p in self.discarded if self.discarded.count(p) >= 3})
        recent = ", ".join(self.moves[-5:])
        return {"guidance": "Tabu, tried recently, do not repeat: " + recent + ".", "avoid": avoid}

    def screen(self, ctx, candidates):
        allowed = [i for i, c in enumerate(candidates) if not self.is_tabu(c)]
        if not allowed:
            return {"reject": True, "reason": "every candidate repeats a recent configuration or move"}
        return {"choose": allowed[0]} if allowed[0] != 0 else None

    def observe(self, ctx, result):
        self.configs = (self.configs + [self.config_key(result["config"])])[-TENURE:]
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves = (self.moves + moves)[-TENURE:]
        if not result["kept"]:
            self.discarded = (self.discarded + list(result["changes"]))[-TENURE:]
