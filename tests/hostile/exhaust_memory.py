"""Allocates far more than the worker's address space: at once, then block by block."""


class Hog:
    name = "exhaust_memory"

    def __init__(self):
        self.blocks = []

    def plan(self, ctx):
        self.blocks.append(" " * (4 * 1024 ** 3))
        while True:
            self.blocks.append(bytearray(256 * 1024 * 1024))
