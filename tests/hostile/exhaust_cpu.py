"""An endless loop: allowed code, stopped only by the per-call timeout (and RLIMIT_CPU)."""


class Spin:
    name = "exhaust_cpu"

    def plan(self, ctx):
        total = 0
        while True:
            total += 1
