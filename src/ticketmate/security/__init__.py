"""Secrets at rest, passwords, tokens and who may do what."""
