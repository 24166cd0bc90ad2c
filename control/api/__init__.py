"""The control API (FastAPI, mounted at /api/v1)."""
