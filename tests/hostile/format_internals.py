"""Finding 1: a format field walks from self to the worker's globals and builtins."""


class Formatter:
    name = "format_internals"

    def plan(self, ctx):
        leaked = "{0.plan.__func__.__globals__[__builtins__]}".format(self)
        return {"guidance": leaked[:390]}
