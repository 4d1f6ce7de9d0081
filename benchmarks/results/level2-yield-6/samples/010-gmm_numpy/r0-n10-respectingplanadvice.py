"""Tabu search over recent proposals: never train a recent configuration or repeat a recent move; when every
candidate is tabu, refuse them all so the proposers are asked again (resampling)."""

import helpers as h

TENURE = 12  # experiments a configuration or a move stays tabu


class Respectingplanadvice:
    """Tabu search: screen skips candidates that repeat a recent configuration or move, and rejects when all do."""

    name = "respectingplanadvice"

    def __init__(self):
        self.configs = []  # keys of recently run configurations
        self.moves = []  # "NAME=value" of recent single-parameter moves
        self.discarded = []  # parameters changed by recently discarded experiments

    def move_key(self, name, value):
        return name + "=" + h.config_key({"v": value})

    def is_tabu(self, candidate):
        if h.config_key(candidate["config"]) in self.configs:
            return True
        moves = [self.move_key(k, v) for k, v in candidate["changes"].items()]
        return len(moves) > 0 and all(m in self.moves for m in moves)

    def plan(self, ctx):
        # respect the plan's advice and guidance, and avoids the avoid list
        if ctx["guidance"]:
            return {"guidance": ctx["guidance"]}
        if "focus" in ctx:
            return {"focus": ctx["focus"]}
        if "avoid" in ctx:
            return {"avoid": ctx["avoid"]}
        if "n_candidates" in ctx:
            return {"n_candidates": ctx["n_candidates"]}
        if "temperature" in ctx:
            return {"temperature": ctx["temperature"]}
        # keep the best of the proposed candidates
        best_candidate = max(candidates, key=lambda c: c["value"])
        return {"choose": candidates.index(best_candidate)}

    def screen(self, ctx, candidates):
        allowed = [i for i, c in enumerate(candidates) if not self.is_tabu(c)]
        if not allowed:
            return {"reject": True, "reason": "every candidate repeats a recent configuration or move"}
        return {"choose": allowed[0]} if allowed[0] != 0 else None

    def observe(self, ctx, result):
        self.configs = (self.configs + [h.config_key(result["config"])])[-TENURE:]
        moves = [self.move_key(k, v) for k, v in result["changes"].items()]
        self.moves = (self.moves + moves)[-TENURE:]
        if not result["kept"]:
            self.discarded = (self.discarded + list(result["changes"]))[-TENURE:]
