"""Workspaces: tenants and their Jira inbound credentials."""
