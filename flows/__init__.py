"""Prefect flows: composition only (loops, ordering, concurrency), no business rules."""
