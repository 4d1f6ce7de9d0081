"""bilevel: the command line and the wiring of resources from settings."""
