"""Issue 23: `case object(__self__=b)` on a builtin function gives the real builtins module (open, exec)."""


class MatchBuiltins:
    name = "match_builtins_self"

    def plan(self, ctx):
        match len:
            case object(__self__=real):
                try:
                    text = real.open("/tmp/bilevel-hostile-canary/secret.txt").read()
                except Exception as error:
                    text = repr(error)[:60]
                return {"guidance": text[:390]}
        return None
