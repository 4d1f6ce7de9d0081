KNN_SCREEN = '''import math

import helpers as h


class KnnScreen:
    """Ask for 4 candidates and train the one whose nearest measured neighbours were best (inverse-distance weights)."""

    name = "knn_screen"

    def plan(self, ctx):
        return {"n_candidates": 4}

    def position(self, ctx, config):
        point = []
        for spec in ctx["params"]:
            value = config.get(spec["name"])
            if spec["kind"] in ("int", "float") and spec.get("low") is not None and value is not None:
                low, high, x = spec["low"], spec["high"], value
                if spec.get("log") and low > 0 and x > 0:
                    low, high, x = math.log(low), math.log(high), math.log(x)
                point.append((x - low) / ((high - low) or 1.0))
            elif spec["kind"] in ("bool", "choice"):
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
        for view in ctx["trace"][-40:]:
            value = h.value_of(view)
            if value is None:
                continue
            w = 1.0 / (self.distance(here, self.position(ctx, view["config"])) + 1e-3) ** 2
            weights += w
            total += w * value
        return total / weights if weights else None

    def screen(self, ctx, candidates):
        if len(candidates) < 2:
            return None
        best_i, best_v = None, None
        for i, cand in enumerate(candidates):
            v = self.estimate(ctx, cand["config"])
            if v is not None and (best_v is None or h.is_better(ctx, v, best_v)):
                best_i, best_v = i, v
        return None if best_i is None else {"choose": best_i}
'''

PATTERN_MOVE = '''import random

import helpers as h


class PatternMove:
    """After an improvement, step again from the best in the direction that improved (a Hooke-Jeeves pattern move)."""

    name = "pattern_move"

    def propose(self, ctx):
        trace = ctx["trace"]
        best = ctx["best"]["config"]
        for i in range(len(trace) - 1, 0, -1):
            view = trace[i]
            if not view.get("kept") or h.value_of(view) is None or not view["changes"]:
                continue
            before = trace[i - 1]["config"] if i > 0 else ctx["baseline"]["config"]
            changes = {}
            for name, new in view["changes"].items():
                spec = h.param(ctx, name)
                old = before.get(name)
                if spec is None or name not in h.editable(ctx) or spec["kind"] not in ("int", "float"):
                    continue
                if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or old == new:
                    continue
                value = best.get(name, new)
                if spec.get("log") and old > 0 and new > 0:
                    stepped = value * (new / old)
                else:
                    stepped = value + (new - old)
                stepped = min(max(stepped, spec["low"]), spec["high"])
                if spec["kind"] == "int":
                    stepped = int(round(stepped))
                if stepped != value:
                    changes[name] = stepped
            if changes:
                return [{"changes": changes, "reason": "pattern move along the last improvement"}]
            return None
        return None
'''

BEST_NEIGHBOUR = '''import random

import helpers as h


class BestNeighbour:
    """Every iteration, put a neighbour of the best configuration on the table, in the parameter that gained most."""

    name = "best_neighbour"

    def propose(self, ctx):
        stats = h.param_stats(ctx)
        names = [n for n in h.editable(ctx) if n in stats]
        if not names:
            return None
        rng = random.Random(ctx["seed"])
        ranked = sorted(names, key=lambda n: -(stats[n]["best_gain"] or 0.0))
        name = ranked[0] if rng.random() < 0.5 else rng.choice(names)
        value = h.neighbour(ctx, name, rng, value=ctx["best"]["config"].get(name), scale=0.5)
        if value is None:
            return None
        return [h.candidate(name, value, "a step from the best in a parameter that helped")]
'''
MECHS = {"knn_screen": KNN_SCREEN, "pattern_move": PATTERN_MOVE, "best_neighbour": BEST_NEIGHBOUR}
