"""EventRouter: from a JiraEvent to the subscriptions it matches."""
