"""Staff sign-in, sessions and accounts."""
