"""The audit log: who did what to the integration, append-only and hash-chained."""
