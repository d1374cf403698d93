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
    return Connection(websocket, session_id, unique("u"), "student", queue_frames=64)


async def test_concurrent_subscriptions_to_one_session_all_receive_events(redis_url: str) -> None:
    session_id = unique("hub")
    hub = Hub(redis_url, unique("gw"), no_revive, confirm_s=5)
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


async def test_a_reply_reaches_only_its_connection(redis_url: str) -> None:
    session_id, gateway_id = unique("hub"), unique("gw")
    hub = Hub(redis_url, gateway_id, no_revive, confirm_s=5)
    await hub.start()
    redis = connect(redis_url)
    try:
        one, two = connection(session_id), connection(session_id)
        await hub.subscribe(one)
        await hub.subscribe(two)
        frame = {"type": "ack", "client_op_id": "x", "seq": 3, "duplicate": True}
        reply = json.dumps({"connection": two.id, "frame": frame})
        await redis.xadd(f"inkstep:gw:{gateway_id}:replies", {"m": reply})
        seq, raw = await asyncio.wait_for(two.queue.get(), 10)
        assert seq == 0 and json.loads(raw) == frame
        assert one.queue.empty()
    finally:
        await hub.stop()
        await redis.aclose()
