"""Alembic migrations of the prompt log; run them with ``service.storage.migrate``."""
