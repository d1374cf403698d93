"""A replay reads the archive, then the stream: a checkpoint between the two loses nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from inkstep.replay import replay_lines
from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import blob_store_for
from inkstep.store.errors import StoreError
from inkstep.store.streams import connect_blocking, log_key
from tests.helpers import unique


def event(seq: int) -> str:
    return orjson.dumps({"type": "stroke_append", "seq": seq}).decode()


async def test_a_checkpoint_between_reading_the_archive_and_the_stream_loses_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path)
    blobs, session_id = blob_store_for(settings), unique("replay")
    writer = connect_blocking(redis_url)
    for seq in range(1, 61):
        writer.xadd(log_key(session_id), {"e": event(seq)}, id=f"{seq}-0")
    # A first checkpoint archived 1..24 and trimmed them, as the session actor does.
    archive.write_segment(blobs, session_id, [event(seq) for seq in range(1, 25)])
    writer.xtrim(log_key(session_id), minid="25-0", approximate=False)
    redis = aioredis.from_url(redis_url)
    try:
        lines = replay_lines(settings, redis, session_id)
        seqs = [orjson.loads(await anext(lines))["seq"]]  # the archive has been read
        # The next checkpoint archives 25..50 and trims them before the stream is read.
        archive.write_segment(blobs, session_id, [event(seq) for seq in range(25, 51)])
        writer.xtrim(log_key(session_id), minid="51-0", approximate=False)
        seqs += [orjson.loads(line)["seq"] async for line in lines]
    finally:
        await redis.aclose()
        writer.delete(log_key(session_id))
        writer.close()
    assert seqs == list(range(1, 61))


async def test_events_missing_from_both_archive_and_stream_are_an_error(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path)
    blobs, session_id = blob_store_for(settings), unique("replay")
    writer = connect_blocking(redis_url)
    for seq in range(30, 41):  # 1..29 are nowhere: an archive lost by hand
        writer.xadd(log_key(session_id), {"e": event(seq)}, id=f"{seq}-0")
    archive.write_segment(blobs, session_id, [event(seq) for seq in range(1, 11)])
    redis = aioredis.from_url(redis_url)
    try:
        with pytest.raises(StoreError, match="after seq 10"):
            _ = [line async for line in replay_lines(settings, redis, session_id)]
    finally:
        await redis.aclose()
        writer.delete(log_key(session_id))
        writer.close()
