"""Model-based screening: ask for several candidates and train the one the trace's nearest results rate best."""

import math

import helpers as h
import random

# Asked for per iteration; screening among one candidate decides nothing. Live, each candidate the LLM proposes is an
# LLM call (tasks/propose.py), so this doubles the proposal calls; the hybrid adds the optimiser's untaken suggestion.
CANDIDATES = 2
NEIGHBOURS = 40  # the latest measured experiments the estimate looks at


class Respectingplanadvice:
    """Screen by an inverse-distance-weighted estimate: a candidate near good measured configurations trains first."""

    name = "respectingplanadvice"

    def plan(self, ctx):
        return {"n_candidates": CANDIDATES}

    def position(self, ctx, config):
        point = []  # numbers in [0, 1] (log scale where the parameter is), other kinds as text
        for spec in ctx["params"]:
            value = config.get(spec["name"])
            if spec["kind"] in ("int", "float") and spec["low"] is not None and isinstance(value, (int, float)):
                low, high, x = spec["low"], spec["high"], value
                if spec["log"] and low > 0 and x > 0:
                    low, high, x = math.log(low), math.log(high), math.log(x)
                point.append((x - low) / ((high - low) or 1.0))
            else:
                point.append(str(value))
        return point

    def distance(self, a, b):
        total = 0.0
        for x, y in zip(a, b):
            if isinstance(x, str) or isinstance(y, str):
                total += 0.0 if x == y else 1.0
            else:
                total += (x - y) ** 2
        return math.sqrt(total)

    def estimate(self, ctx, config):
        here = self.position(ctx, config)
        weights, total = 0.0, 0.0
        for view in ctx["trace"][-NEIGHBOURS:]:
            value = h.value_of(view)
            if value is None:
                continue
            weight = 1.0 / (self.distance(here, self.position(ctx, view["config"])) + 0.001) ** 2
            weights += weight
            total += weight * value
        return total / weights if weights else None

    def screen(self, ctx, candidates):
        if len(candidates) < 2:
            return None
        chosen, chosen_value = None, None
        for index, candidate in enumerate(candidates):
            value = self.estimate(ctx, candidate["config"])
            if value is not None and (chosen_value is None or h.is_better(ctx, value, chosen_value)):
                chosen, chosen_value = index, value
        return {"choose": chosen} if chosen is not None else None

    def __init__(self, ctx):
            self.ctx = ctx
            self.best_config = None
            self.best_value = None
            self.state = {
                "best_config": None,
                "best_value": None
            }
