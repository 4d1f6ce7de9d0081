"""Issue 23: `case object(format=f)` on a string gets str.format of a template the format rule never saw."""


class MatchFormat:
    name = "match_format_string"

    def plan(self, ctx):
        match "{0.plan.__func__.__globals__[__builtins__]}":
            case object(format=fill):
                return {"guidance": fill(self)[:390]}
        return None
