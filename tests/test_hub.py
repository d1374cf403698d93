"""The fan-out hub on a real Redis: every subscribed connection gets every event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.connection import Connection
from gateway.hub import Hub
from inkstep.store.streams import connect, log_key
from tests.helpers import unique


async def no_revive(session_id: str) -> None:
    return None


def connection(session_id: str) -> Connection:
    # The hub only queues frames; the socket is never touched in these tests.
    websocket: Any = None
    return Connection(websocket, session_id, unique("u"), "student", 64, "gw-test")


async def test_concurrent_subscriptions_to_one_session_all_receive_events(redis_url: str) -> None:
    session_id = unique("hub")
    hub = Hub(redis_url, unique("gw"), no_revive, confirm_s=5, alive_ttl_s=15)
    await hub.start()
    redis = connect(redis_url)
    try:
        clients = [connection(session_id) for _ in range(5)]
        await asyncio.gather(*(hub.subscribe(c) for c in clients))
        event = {"type": "stroke_append", "seq": 1}
        await redis.xadd(log_key(session_id), {"e": json.dumps(event)}, id="1-0")
        for client in clients:
            seq, raw = await asyncio.wait_for(client.queue.get(), 10)
            assert (seq, json.loads(raw)) == (1, event)
    finally:
        await hub.stop()
        await redis.aclose()
