"""The authenticated RBAC proxy in front of the Dagster webserver (see docs/security.md)."""
