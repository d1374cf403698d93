"""Reads of a session's log on a real Redis: the actor's, a page at a time, and the
gateway's tail for a resume."""

from __future__ import annotations

import orjson
import pytest

from inkstep.store.streams import (
    READ_PAGE_EVENTS,
    BlockingSessionLog,
    SessionLog,
    connect_blocking,
    log_key,
    redis_client,
)
from tests.helpers import unique


@pytest.mark.parametrize("events", [0, 1, READ_PAGE_EVENTS, 2 * READ_PAGE_EVENTS + 50])
def test_events_after_reads_every_page_in_order(redis_url: str, events: int) -> None:
    client, session_id = connect_blocking(redis_url), unique("log")
    for seq in range(1, events + 1):
        client.xadd(log_key(session_id), {"e": orjson.dumps({"seq": seq})}, id=f"{seq}-0")
    log = BlockingSessionLog(client, session_id)
    try:
        assert [orjson.loads(e)["seq"] for e in log.events_after(0)] == list(range(1, events + 1))
        upto = max(0, events - 10)
        middle = [orjson.loads(e)["seq"] for e in log.events_after(3, upto=upto)]
        assert middle == list(range(4, upto + 1))
        numbered = log.numbered_events_after(3, upto=upto)
        assert [seq for seq, _ in numbered] == middle
        assert [orjson.loads(e)["seq"] for _, e in numbered] == middle
    finally:
        client.delete(log_key(session_id))
        client.close()


async def test_a_tail_trimmed_after_its_last_seq_was_read_is_not_whole(redis_url: str) -> None:
    """A resume reads the log's last seq, then the tail up to it. A checkpoint that trims the
    stream in between must make the tail count as not whole (the client gets a snapshot),
    never hand over events with a gap."""
    session_id = unique("tail")
    async with redis_client(redis_url) as client:
        for seq in range(1, 101):
            await client.xadd(log_key(session_id), {"e": orjson.dumps({"seq": seq})},
                              id=f"{seq}-0")  # fmt: skip
        log = SessionLog(client, session_id)
        try:
            current = await log.last_seq()
            whole = await log.whole_tail(10, upto=current)
            assert whole is not None
            assert [orjson.loads(e)["seq"] for e in whole] == list(range(11, 101))
            await client.xtrim(log_key(session_id), minid="50-0", approximate=False)
            assert await log.whole_tail(10, upto=current) is None
            assert await log.whole_tail(49, upto=current) is not None
            assert await log.whole_tail(48, upto=current) is None
            assert await log.whole_tail(current, upto=current) == []
        finally:
            await client.delete(log_key(session_id))


async def test_the_step_now_brings_the_session_record_forward_by_the_log(redis_url: str) -> None:
    """The session record (step, seq) is written a moment after the events; the summary's
    step must match its last_seq, so the log's step changes after the record count."""
    session_id = unique("step")
    kinds = ["stroke_append", "step_change", "stroke_append", "step_change", "undo"]
    async with redis_client(redis_url) as client:
        for seq, kind in enumerate(kinds, start=1):
            payload = {"to_step": f"s{seq}"} if kind == "step_change" else {"tool": "step_change"}
            event = {"type": kind, "seq": seq, "payload": payload}
            await client.xadd(log_key(session_id), {"e": orjson.dumps(event)}, id=f"{seq}-0")
        log = SessionLog(client, session_id)
        try:
            assert await log.step_now("s1", 0) == ("s4", 5)  # both changes after the record
            assert await log.step_now("s2", 2) == ("s4", 5)
            assert await log.step_now("s4", 4) == ("s4", 5)  # a look-alike is not a change
            assert await log.step_now("s4", 5) == ("s4", 5)
            # Events after the record gone from the log: the record's step stands.
            await client.xtrim(log_key(session_id), minid="3-0", approximate=False)
            assert await log.step_now("s1", 0) == ("s1", 5)
        finally:
            await client.delete(log_key(session_id))
