"""Users, memberships, API tokens, web sessions and sign-in."""
