"""Alembic environment: runs on the connection `Database.migrate()` hands over.

Without one (the `alembic` command line, for autogenerate or offline SQL) it connects to
`sqlalchemy.url` from the config, or else INKSTEP_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from inkstep.store.database import async_database_url, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("INKSTEP_DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or INKSTEP_DATABASE_URL")
    return url


async def _run_online() -> None:
    engine = create_async_engine(async_database_url(_url()))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=async_database_url(_url()), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    asyncio.run(_run_online())
