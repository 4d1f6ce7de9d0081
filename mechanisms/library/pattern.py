"""Pattern move (after Hooke-Jeeves): after a kept improvement, step again from the best along the direction it took."""

import helpers as h


class PatternMove:
    """Repeat the last kept improvement's step from the best: x2 again on a log scale, +d again otherwise; the step is
    taken from the experiment just before the improvement, so after a discarded one it reflects away from it."""

    name = "pattern_move"

    def propose(self, ctx):
        trace = ctx["trace"]
        best = ctx["best"]["config"]
        for i in range(len(trace) - 1, 0, -1):
            view = trace[i]
            if not view["kept"] or h.value_of(view) is None or not view["changes"]:
                continue
            # The step is measured from the experiment just before the improvement: its start when that was kept (a
            # pattern move), the rejected point when it was discarded (a reflection away from it, past the best).
            # Measuring from the kept start only simulated worse on the development traces (level2-shapes README).
            before = trace[i - 1]["config"]
            changes = {}
            for name, new in view["changes"].items():
                spec = h.param(ctx, name)
                old = before.get(name)
                if spec is None or name not in h.editable(ctx) or spec["kind"] not in ("int", "float"):
                    continue
                if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or old == new:
                    continue
                value = best.get(name, new)
                if spec["log"] and old > 0 and new > 0:
                    stepped = value * (new / old)
                else:
                    stepped = value + (new - old)
                stepped = min(max(stepped, spec["low"]), spec["high"])
                if spec["kind"] == "int":
                    stepped = int(round(stepped))
                if stepped != value:
                    changes[name] = stepped
            if changes:
                return [{"changes": changes, "reason": "pattern move along the last kept improvement"}]
            return None  # only the latest improvement sets the direction
        return None
