import random

import helpers as h


class ConflictAdvisor:
    """The propose hook should consider the current state of the graph and the number of conflicts to propose candidates that are more likely to reduce conflicts. The propose hook should return a list of candidates that are more likely to reduce conflicts. The propose hook should return None, or a list of up to 4 candidates, each made with h.candidate(NAME, value, "reason") (a dict {"changes": {NAME: value}, "reason": str}), or {"candidates": [...], "skip_llm": True} to skip the LLM this iteration. Values must be valid for the parameter (use h.neighbour or h.random_value); invalid or already-tried ones are dropped."""

    name = "conflict_advisor"

    def __init__(self):
        # Keep the state (conflict_count, graph_state, proposed_candidates) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Calculate the conflict count for each parameter
        conflict_count = {param: sum(1 for result in ctx["trace"] if result["config"][param] != ctx["current"][param]) for param in ctx["params"]}
        
        # Sort parameters by conflict count in descending order
        sorted_params = sorted(conflict_count.items(), key=lambda x: x[1], reverse=True)
        
        # Select the top 4 parameters (or fewer if there are fewer than 4)
        top_params = sorted_params[:4]
        
        # Propose a nearby value for each of these parameters
        proposed_candidates = []
        for param, count in top_params:
            rng = random.Random(ctx["seed"])
            value = h.neighbour(ctx, param, rng)
            if value is None:
                continue
            reason = f"Conflict advisor: {param} kept {count} conflicts"
            proposed_candidates.append(h.candidate(param, value, reason))
        
        return proposed_candidates if proposed_candidates else None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the state with the new experiment
        self.state[result["index"]] = result
