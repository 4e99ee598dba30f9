"""Alembic revisions (a package so that they ship inside the wheel)."""
