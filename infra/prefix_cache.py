"""KV states of earlier prompts, found again by the longest token prefix they share with a new prompt: in bounded RAM
(within a process) and as files (across processes).

llama.cpp keeps one KV sequence: a prompt that shares only a short prefix with the previous one (another track,
another level) throws the rest away. Snapshots of the states about to be thrown away let the next prompt of that
kind start warm, and a state on disk lets a new process skip its first prompt's stable part. Bookkeeping only:
the states are opaque buffers with a size; the runtime takes and restores them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


class DiskPrefixStore:
    """KV states of long prompts as files, shared by the processes of this machine (runs, resumes, Dask workers): a
    process's first prompt restores the stable part it shares with an earlier run instead of evaluating it.

    `folder` must be specific to the model file, the context size and the llama.cpp version (the state format).
    Each state is two files: `<key>.tokens` (int32, what the state holds) and `<key>.kv`; both are written under
    temporary names and renamed, the tokens last, so a reader sees whole files only. At most `capacity_bytes` of
    states are kept, the least recently used removed first."""

    def __init__(self, folder: Path, capacity_bytes: int) -> None:
        self.folder = folder
        self.capacity_bytes = capacity_bytes

    def best(self, prompt: Sequence[int]) -> tuple[Path | None, tuple[int, ...], int]:
        """The state file sharing the longest prefix with `prompt`: (its .kv path, its tokens, the shared length)."""
        found: Path | None = None
        found_tokens: tuple[int, ...] = ()
        longest = 0
        for index in sorted(self.folder.glob("*.tokens")) if self.folder.is_dir() else []:
            try:
                tokens = tuple(array("i", index.read_bytes()))
            except OSError:
                continue  # removed meanwhile by another process
            shared = common_prefix(tokens, prompt)
            if shared > longest:
                found, found_tokens, longest = index.with_suffix(".kv"), tokens, shared
        return found, found_tokens, longest

    def read(self, path: Path) -> bytes | None:
        """The state in `path` (its use time refreshed), or None if another process removed it meanwhile."""
        try:
            data = path.read_bytes()
            os.utime(path.with_suffix(".tokens"))
        except OSError:
            return None
        return data

    def write(self, tokens: Sequence[int], state: Any, nbytes: int) -> Path | None:
        """Store a state (bytes-like, `nbytes` long) holding `tokens`; None when it is larger than the capacity."""
        if nbytes > self.capacity_bytes or not tokens:
            return None
        packed = array("i", tokens).tobytes()
        key = hashlib.sha256(packed).hexdigest()[:24]
        self.folder.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
        kv, index = self.folder / f"{key}.kv", self.folder / f"{key}.tokens"
        try:
            (self.folder / (kv.name + suffix)).write_bytes(memoryview(state).cast("B")[:nbytes])
            os.replace(self.folder / (kv.name + suffix), kv)
            (self.folder / (index.name + suffix)).write_bytes(packed)
            os.replace(self.folder / (index.name + suffix), index)
        finally:
            for leftover in (kv.name + suffix, index.name + suffix):
                (self.folder / leftover).unlink(missing_ok=True)
        self._evict()
        return kv

    def _evict(self) -> None:
        entries = []
        for index in self.folder.glob("*.tokens"):
            try:
                entries.append((index.stat().st_mtime, index, index.with_suffix(".kv").stat().st_size))
            except OSError:
                continue
        total = sum(size for _, _, size in entries)
        for _, index, size in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.capacity_bytes:
                break
            index.unlink(missing_ok=True)  # the index first: no reader picks a state being removed
            index.with_suffix(".kv").unlink(missing_ok=True)
            total -= size
        for stale in self.folder.glob("*.tmp-*"):  # a writer that died half-way, an hour ago or more
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
