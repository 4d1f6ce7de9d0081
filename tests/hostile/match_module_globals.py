"""Issue 23: `case object(__globals__=g)` on an allowed function gives its module's globals and real builtins."""
import json


class MatchGlobals:
    name = "match_module_globals"

    def plan(self, ctx):
        match json.loads:
            case object(__globals__={"__builtins__": {"__import__": real}}):
                environ = real("os").environ
                system = real("sys")
                return {"guidance": (repr(dict(environ)) + " " + repr(sorted(system.modules)))[:390]}
        return None
