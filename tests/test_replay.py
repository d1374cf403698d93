"""A replay reads the archive, then the stream: a checkpoint between the two loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from inkstep.replay import replay_lines
from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import BlobStore, blob_store_for
from inkstep.store.errors import StoreError
from inkstep.store.streams import connect_blocking, log_key
from tests.helpers import unique


def event(seq: int) -> str:
    return orjson.dumps({"type": "stroke_append", "seq": seq}).decode()


@dataclass
class Stores:
    """A session's log on the real Redis and its archive in a blob folder."""

    settings: Settings
    blobs: BlobStore
    session_id: str
    writer: redis.Redis

    def log(self, seqs: range) -> None:
        for seq in seqs:
            self.writer.xadd(log_key(self.session_id), {"e": event(seq)}, id=f"{seq}-0")

    def archive_and_trim(self, seqs: range) -> None:
        """What a checkpoint does: archive the events, then trim them from the log."""
        archive.write_segment(self.blobs, self.session_id, [event(seq) for seq in seqs])
        self.writer.xtrim(log_key(self.session_id), minid=f"{seqs.stop}-0", approximate=False)


@pytest.fixture
async def stores(redis_url: str, tmp_path: Path) -> AsyncIterator[Stores]:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path)
    writer = connect_blocking(redis_url)
    opened = Stores(settings, blob_store_for(settings), unique("replay"), writer)
    yield opened
    writer.delete(log_key(opened.session_id))
    writer.close()


async def replayed_seqs(stores: Stores, after_first: Callable[[], None] = lambda: None
                        ) -> list[int]:  # fmt: skip
    """The replay's seqs; `after_first` runs once the archive has been read."""
    client = aioredis.from_url(stores.settings.resolved_redis_url())
    try:
        lines = replay_lines(stores.settings, client, stores.session_id)
        seqs = [orjson.loads(await anext(lines))["seq"]]
        after_first()
        return seqs + [orjson.loads(line)["seq"] async for line in lines]
    finally:
        await client.aclose()


async def test_a_checkpoint_between_reading_the_archive_and_the_stream_loses_nothing(
    stores: Stores,
) -> None:
    stores.log(range(1, 61))
    stores.archive_and_trim(range(1, 25))  # a first checkpoint
    # The next one archives and trims 25..50 after the replay read the archive.
    seqs = await replayed_seqs(stores, lambda: stores.archive_and_trim(range(25, 51)))
    assert seqs == list(range(1, 61))


async def test_events_missing_from_both_archive_and_stream_are_an_error(stores: Stores) -> None:
    stores.log(range(30, 41))  # 11..29 are nowhere: an archive lost by hand
    archive.write_segment(stores.blobs, stores.session_id, [event(seq) for seq in range(1, 11)])
    with pytest.raises(StoreError, match="after seq 10"):
        await replayed_seqs(stores)
