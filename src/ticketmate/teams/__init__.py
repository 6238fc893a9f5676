"""Teams channels: webhooks, subscriptions, the HTTP client that talks to Teams, cards."""
