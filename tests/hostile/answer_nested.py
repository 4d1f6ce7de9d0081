"""Finding 3: a list nested 985 deep, which the worker can encode and the host could not decode; only
after a few experiments, so a short smoke test would miss it."""


class Nested:
    name = "answer_nested"

    def __init__(self):
        self.calls = 0

    def plan(self, ctx):
        self.calls += 1
        if self.calls < 3:
            return {"focus": [ctx["params"][0]["name"]]}
        value = []
        for _ in range(985):
            value = [value]
        return {"focus": value}
