"""The sequencer of `bench fanout --sequenced` on a real Redis: each room numbered on its own,
in inbox order, into the stream its relay fans out from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from inkstep.bench.sequencer import ROOMS_STREAM, Sequencer, inbox_stream, log_stream
from inkstep.store.streams import connect_blocking
from tests.helpers import unique


@pytest.fixture
def control(redis_url: str) -> Iterator[redis.Redis]:
    client = connect_blocking(redis_url)
    client.delete(ROOMS_STREAM)
    yield client
    client.delete(ROOMS_STREAM)
    client.close()


def test_each_rooms_ops_are_numbered_in_inbox_order(redis_url: str, control: redis.Redis) -> None:
    first, second = unique("room"), unique("room")
    for room in (first, second):
        control.xadd(ROOMS_STREAM, {"room": room})
    numbering = Sequencer(redis_url)
    assert numbering.step([]) == []  # learns the rooms
    for op in (b"a0", b"a1", b"a2"):
        control.xadd(inbox_stream(first), {"m": op})
    control.xadd(inbox_stream(second), {"m": b"b0"})
    writes = numbering.step([])
    control.xadd(inbox_stream(second), {"m": b"b1"})  # answers the read that goes with them
    numbering.step(writes)

    def logged(room: str) -> list[tuple[bytes, bytes]]:
        return [(entry_id, fields[b"m"]) for entry_id, fields in control.xrange(log_stream(room))]

    assert logged(first) == [(b"1-0", b"a0"), (b"2-0", b"a1"), (b"3-0", b"a2")]
    assert logged(second) == [(b"1-0", b"b0")]  # b1 is numbered with the next send
