"""Novelty rejection: refuse a candidate too close to what was already run, and ask again (resampling); among the
candidates, train the most novel one. Distances are relative to each parameter's range (log range on log scales)."""

import math


MIN_DISTANCE = 0.05  # a candidate closer than this (as a fraction of the ranges) to a tried config is a near repeat


class NoveltyRejection:
    """Novelty search screen: choose the candidate farthest from the tried set; reject when all are near repeats."""

    name = "novelty"

    def distance(self, ctx, a, b):
        largest = 0.0
        for spec in ctx["params"]:
            name = spec["name"]
            x, y = a.get(name), b.get(name)
            if x == y:
                continue
            if spec["kind"] in ("int", "float") and spec.get("low") is not None and spec["high"] > spec["low"]:
                if spec.get("log") and spec["low"] > 0 and x > 0 and y > 0:
                    gap = abs(math.log(x) - math.log(y)) / (math.log(spec["high"]) - math.log(spec["low"]))
                else:
                    gap = abs(x - y) / (spec["high"] - spec["low"])
            else:
                gap = 1.0
            largest = max(largest, gap)
        return largest

    def novelty(self, ctx, candidate):
        tried = [view["config"] for view in ctx["trace"]]
        if not tried:
            return 1.0
        return min(self.distance(ctx, candidate["config"], config) for config in tried)

    def screen(self, ctx, candidates):
        scores = [self.novelty(ctx, c) for c in candidates]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        if scores[best] < MIN_DISTANCE:
            return {"reject": True, "reason": "every candidate is within 5% of a configuration already run"}
        return {"choose": best} if best != 0 else None
