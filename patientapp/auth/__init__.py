"""Staff sign-in and server-side sessions: the routes, and what other blueprints share."""
