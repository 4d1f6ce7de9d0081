"""One-factor-at-a-time design of experiments: explore the least-tried parameters, one change at a time."""

FOCUS_SIZE = 2  # parameters named in each plan
CANDIDATES = 2  # proposals asked for, so screen has a choice


class OneFactorDesign:
    """Orthogonal exploration: plan focuses on the least-explored parameters; screen prefers single-factor candidates."""

    name = "one_factor"

    def __init__(self):
        self.tries = {}  # parameter -> experiments that changed it

    def least_explored(self, ctx):
        frozen = set(ctx["frozen"])
        names = [p["name"] for p in ctx["params"] if p["name"] not in frozen]
        return sorted(names, key=lambda n: (self.tries.get(n, 0), names.index(n)))

    def plan(self, ctx):
        focus = self.least_explored(ctx)[:FOCUS_SIZE]
        if not focus:
            return None
        guidance = "Change exactly one parameter, preferably " + " or ".join(focus) + ", so its effect shows alone."
        return {"focus": focus, "n_candidates": CANDIDATES, "guidance": guidance}

    def screen(self, ctx, candidates):
        rank = {name: i for i, name in enumerate(self.least_explored(ctx))}
        singles = [i for i, c in enumerate(candidates) if len(c["changes"]) == 1]
        if not singles:
            return None
        best = min(singles, key=lambda i: (rank.get(list(candidates[i]["changes"])[0], len(rank)), i))
        return {"choose": best}

    def observe(self, ctx, result):
        for name in result["changes"]:
            self.tries[name] = self.tries.get(name, 0) + 1
