"""Answers NaN and Infinity, which are not JSON."""
import math


class NotANumber:
    name = "answer_nan"

    def plan(self, ctx):
        return {"temperature": math.nan, "guidance": "x", "n_candidates": math.inf}
