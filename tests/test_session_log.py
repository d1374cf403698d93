"""The session actor's reads of its log, a page at a time, on a real Redis."""

from __future__ import annotations

import orjson
import pytest

from inkstep.store.streams import (
    READ_PAGE_EVENTS,
    BlockingSessionLog,
    connect_blocking,
    log_key,
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
    finally:
        client.delete(log_key(session_id))
        client.close()
