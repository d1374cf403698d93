"""A session's full history: archived segments from the blob store, then the live stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TextIO

import redis.asyncio as aioredis

from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import blob_store_for
from inkstep.store.streams import SessionLog, redis_client


async def replay_lines(
    settings: Settings, redis: aioredis.Redis, session_id: str
) -> AsyncIterator[str]:
    """Every event of a session in seq order, each once, as JSON text."""
    blobs = blob_store_for(settings)
    archived = await asyncio.to_thread(lambda: list(archive.read_segments(blobs, session_id)))
    last = 0
    for raw in archived:
        last = json.loads(raw)["seq"]
        yield raw
    for raw in await SessionLog(redis, session_id).events_after(last):
        yield raw


async def export_replay(settings: Settings, session_id: str, out: TextIO) -> int:
    """Write the replay as NDJSON; answers how many events were written."""
    count = 0
    async with redis_client(settings.resolved_redis_url()) as redis:
        async for raw in replay_lines(settings, redis, session_id):
            out.write(raw + "\n")
            count += 1
    return count
