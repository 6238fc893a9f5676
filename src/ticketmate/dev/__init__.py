"""Tools for local demos and tests: a Teams stand-in that shows what would reach a channel."""
