"""Alembic migrations of the inkstep schema; run by `inkstep.store.database.Database.migrate`."""
