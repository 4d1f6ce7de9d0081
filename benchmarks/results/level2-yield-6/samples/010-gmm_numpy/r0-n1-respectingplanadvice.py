import random

import helpers as h


class Respectingplanadvice:
    """The mechanism respects the plan's advice and guidance, and avoids the avoid list, and keeps the best of the proposed candidates, and updates the plan based on the results of the screen and accept hook"""

    name = "respectingplanadvice"

    def __init__(self):
        # Keep the state (The, state, keeps, the) in the dict self.state.
        self.state = {}

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        avoid = sorted({p for p in self.state.get("avoid", []) if self.state.get("kept", False) > 0})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        proposed = []
        for param in ctx["params"]:
            if not h.is_better(ctx, ctx["current"], ctx["best"]):
                proposed.append(h.candidate(param["name"], h.random_value(ctx, param["name"], random.Random()), "random"))
        return proposed

    def screen(self, ctx, candidates):
        """After proposing, pick which candidate trains. Return what the API says for screen, or None."""
        allowed = [i for i, c in enumerate(candidates) if not h.is_tabu(c) and not h.config_key(c["config"]) in self.state.get("avoid", [])]
        if not allowed:
            return {"reject": True, "reason": "all candidates are tabu or repeat a recent configuration or move"}
        return {"choose": allowed[0]} if allowed[0] != 0 else None

    def accept(self, ctx, result, default):
        """After training, override keep/discard. Return what the API says for accept, or None."""
        if h.is_better(ctx, ctx["best"], result):
            return True
        return False

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        self.state = {
            "avoid": list(set(self.state.get("avoid", []) + [h.config_key(result["config"])]) if result["kept"] else self.state.get("avoid", []),
            "kept": result["kept"],
        }
