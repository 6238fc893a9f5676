"""The admin web UI: server-rendered pages."""
