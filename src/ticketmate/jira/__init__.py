"""Jira intake: the webhook endpoint, signatures, and the raw payload → JiraEvent transformer."""
