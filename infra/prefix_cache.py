"""KV states of earlier prompts in bounded RAM, found again by the longest token prefix they share with a new prompt.

llama.cpp keeps one KV sequence: a prompt that shares only a short prefix with the previous one (another track,
another level) throws the rest away. Snapshots of the states about to be thrown away let the next prompt of that
kind start warm. Pure bookkeeping: the states are opaque objects with a size; the runtime takes and restores them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    shared = 0
    for x, y in zip(a, b):
        if x != y:
            break
        shared += 1
    return shared


@dataclass(frozen=True)
class Snapshot:
    """A KV state and the tokens it holds."""

    tokens: tuple[int, ...]
    state: Any
    nbytes: int


class PrefixStateCache:
    """Least recently used snapshots, at most `capacity_bytes` in all. A snapshot whose tokens start another's is
    dropped (the longer one serves every prompt the shorter would), and one larger than the capacity is not kept."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[tuple[int, ...], Snapshot] = OrderedDict()
        self.hits = 0
        self.stores = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def best(self, prompt: Sequence[int]) -> tuple[Snapshot | None, int]:
        """The snapshot sharing the longest prefix with `prompt`, and that length (None, 0 when none shares any)."""
        found, longest = None, 0
        for entry in self._entries.values():
            shared = common_prefix(entry.tokens, prompt)
            if shared > longest:
                found, longest = entry, shared
        return found, longest

    def take(self, snapshot: Snapshot) -> None:
        """Mark `snapshot` as used now (it is restored), so that it is evicted last."""
        if snapshot.tokens in self._entries:
            self._entries.move_to_end(snapshot.tokens)
            self.hits += 1

    def covers(self, tokens: Sequence[int]) -> bool:
        """Whether a snapshot already holds `tokens` (or more after them): storing them again would add nothing."""
        return any(len(key) >= len(tokens) and common_prefix(key, tokens) == len(tokens) for key in self._entries)

    def put(self, snapshot: Snapshot) -> None:
        """Keep `snapshot`, dropping those it makes redundant, then the least recently used beyond the capacity."""
        if snapshot.nbytes > self.capacity_bytes or not snapshot.tokens or self.covers(snapshot.tokens):
            return
        tokens = snapshot.tokens
        for key in [k for k in self._entries if len(k) <= len(tokens) and tokens[: len(k)] == k]:
            del self._entries[key]
        self._entries[tokens] = snapshot
        self.stores += 1
        while self.nbytes > self.capacity_bytes:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
