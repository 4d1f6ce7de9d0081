"""Allocates far more than the worker's address space."""


class Hog:
    name = "exhaust_memory"

    def __init__(self):
        self.blocks = []

    def plan(self, ctx):
        while True:
            self.blocks.append(bytearray(256 * 1024 * 1024))
