"""A session's full history: archived segments from the blob store, then the live stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TextIO

import redis.asyncio as aioredis

from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import BlobStore, blob_store_for
from inkstep.store.errors import StoreError
from inkstep.store.streams import SessionLog, redis_client

# Each attempt catches up with the checkpoints that ran since the last one; needing more than
# this means the stream is trimmed faster than it can be read, which no session does.
READ_ATTEMPTS = 5


async def replay_lines(
    settings: Settings, redis: aioredis.Redis, session_id: str
) -> AsyncIterator[str]:
    """Every event of a session in seq order, each once, as JSON text.

    The segments are read before the stream, and a checkpoint in between may archive the
    events after the last segment read and trim them from the stream. A segment is written
    before the stream is trimmed, so the segments are then read again from there."""
    blobs = blob_store_for(settings)
    log = SessionLog(redis, session_id)
    last = 0
    for _ in range(READ_ATTEMPTS):
        archived = await asyncio.to_thread(_archived_after, blobs, session_id, last)
        for raw in archived:
            last = json.loads(raw)["seq"]
            yield raw
        stream = await log.events_after(last)
        if not stream or json.loads(stream[0])["seq"] == last + 1:
            for raw in stream:
                yield raw
            return
    raise StoreError(f"events after seq {last} are in neither the archive nor the stream")


def _archived_after(blobs: BlobStore, session_id: str, seq: int) -> list[str]:
    return list(archive.read_segments(blobs, session_id, seq))


async def export_replay(settings: Settings, session_id: str, out: TextIO) -> int:
    """Write the replay as NDJSON; answers how many events were written."""
    count = 0
    async with redis_client(settings.resolved_redis_url()) as redis:
        async for raw in replay_lines(settings, redis, session_id):
            out.write(raw + "\n")
            count += 1
    return count
