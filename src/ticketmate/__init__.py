"""Ticket MATE: Jira activity delivered to Microsoft Teams channels."""

__version__ = "0.1.0"
