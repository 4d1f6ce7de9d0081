"""bilevel: the command line (the wiring of resources lives in infra/resources.py, below the flows)."""
