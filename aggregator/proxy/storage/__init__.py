"""SQL tables of the proxy: users, sessions, tokens, audit records, and their migrations."""
