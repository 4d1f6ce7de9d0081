import random

import helpers as h


class Respectingplanadvice:
    """The mechanism respects the plan's advice and guidance, and avoids the avoid list, and keeps the best of the proposed candidates, and updates the plan based on the results of the screen and accept hook"""

    name = "respectingplanadvice"

    def __init__(self):
        # Keep the state (The, state, keeps, the) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        avoid = sorted({p for p in self.state.get("avoid", []) if self.state.get("discarded", []).count(p) >= 3})
        if not avoid:
            return None
        return {"avoid": avoid, "guidance": "Recently discarded again and again, leave alone: " + ", ".join(avoid) + "."}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        proposed = ctx["trace"][-1]["changes"]
        if proposed:
            return {"focus": list(proposed.keys())}
        return None

    def screen(self, ctx, candidates):
        """After proposing, pick which candidate trains. Return what the API says for screen, or None."""
        allowed = [i for i, c in enumerate(candidates) if not self.is_tabu(c)]
        if not allowed:
            return {"reject": True, "reason": "every candidate repeats a recent configuration or move"}
        return {"choose": allowed[0]} if allowed[0] != 0 else None

    def accept(self, ctx, result, default):
        """After training, override keep/discard. Return what the API says for accept, or None."""
        if result["kept"]:
            self.state["discarded"] = (self.state.get("discarded", []) + list(result["changes"]))[-TENURE:]
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        self.state["keep"] = result["kept"]
        self.state["discarded"] = (self.state.get("discarded", []) + list(result["changes"]))[-TENURE:]
        self.state["avoid"] = sorted({p for p in self.state.get("avoid", []) if self.state.get("discarded", []).count(p) >= 3})
        return None
