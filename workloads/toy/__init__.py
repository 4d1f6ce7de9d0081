"""toy: a synthetic objective that runs in milliseconds, for flow and CLI tests (no torch, no data)."""
