"""Staged, resumable uploads into the directories file sensors watch (the API routes are in api/upload_routes.py)."""
