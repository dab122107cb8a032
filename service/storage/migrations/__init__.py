"""Alembic migrations of the jobcontrol schema."""
