"""Who is asking: bearer tokens and sessions, sign-in with its throttle, OIDC."""
