"""The default keep/discard rule of the inner loop (mechanisms may override it through `accept`)."""

from __future__ import annotations

from search.state import SearchState


def default_keep(state: SearchState, measured: float | None, min_improvement: float = 0.0) -> bool:
    """Keep a strictly lower val_bpb than the current point, by at least `min_improvement` (paper: 0)."""
    if measured is None:
        return False
    return measured < state.current.val_bpb - min_improvement


def needs_confirmation(state: SearchState, measured: float | None, min_improvement: float, confirm_seed: int | None) -> bool:
    """A candidate that would be kept is re-run on a second seed first, when confirmation is on."""
    return confirm_seed is not None and default_keep(state, measured, min_improvement)
