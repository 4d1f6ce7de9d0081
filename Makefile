# The two commands of a fresh machine (README): `make run` and `make test`. Both set up first (idempotent).
.PHONY: run test setup

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/bilevel run

test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/python -m pytest
