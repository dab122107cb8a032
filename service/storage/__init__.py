"""Persistence: SQLAlchemy 2 async, one writer with group commit, Alembic migrations."""
