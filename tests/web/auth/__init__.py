"""Staff sign-in and accounts."""
