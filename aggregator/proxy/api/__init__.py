"""The management API under `/api/`: pipelines, queries, exports and connector types (docs/api.md)."""
