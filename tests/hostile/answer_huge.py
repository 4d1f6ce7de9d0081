"""An answer far over the size limit, then duplicate keys (1 and "1" both become "1" in JSON)."""


class Huge:
    name = "answer_huge"

    def plan(self, ctx):
        return {"guidance": "x" * (8 * 1024 * 1024)}

    def screen(self, ctx, candidates):
        return {1: "a", "1": "b"}
