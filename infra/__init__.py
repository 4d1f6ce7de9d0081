"""Adapters to the outside world, created once from settings and passed in: LLM, tracking, store, services."""
