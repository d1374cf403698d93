"""Presence (cursors, tool, status): Redis only, never the session actor, never the log.

The latest per user is kept in a hash with a TTL, and every update is published on the
session's channel; each gateway relays what it hears to its other clients in that session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from gateway.connection import Connection
from inkstep.store.errors import StoreError
from inkstep.store.streams import connect, guarded

logger = logging.getLogger(__name__)


def presence_key(session_id: str) -> str:
    return f"inkstep:{{{session_id}}}:presence"


def channel_of(session_id: str) -> str:
    return f"inkstep:{{{session_id}}}:presence:ch"


class Presence:
    """Publishes presence updates and relays other gateways' updates to local clients."""

    def __init__(self, redis_url: str, ttl_s: int, per_second: float) -> None:
        self.redis: aioredis.Redis = connect(redis_url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.ttl_s = ttl_s
        self.min_interval_s = 1.0 / per_second
        self.local: dict[str, set[Connection]] = {}
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._relay_loop(), name="presence-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # Untyped in older redis-py releases, typed in newer ones.
        await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self.redis.aclose()

    async def add(self, connection: Connection) -> None:
        sessions = self.local.setdefault(connection.session_id, set())
        if not sessions:
            await guarded(self.pubsub.subscribe(channel_of(connection.session_id)))
            self._subscribed.set()
        sessions.add(connection)
        for frame in await self.latest(connection.session_id):
            if frame["user_id"] != connection.user_id:
                connection.send_frame(frame)

    async def remove(self, connection: Connection) -> None:
        sessions = self.local.get(connection.session_id, set())
        sessions.discard(connection)
        self._pending.pop(connection.id, None)
        if not sessions:
            self.local.pop(connection.session_id, None)
            try:
                await guarded(self.pubsub.unsubscribe(channel_of(connection.session_id)))
            except StoreError:
                pass

    async def latest(self, session_id: str) -> list[dict[str, Any]]:
        """Every user's latest presence that has not expired."""
        stored = await guarded(self.redis.hgetall(presence_key(session_id)))
        now, frames = time.time(), []
        for value in stored.values():
            entry = json.loads(value)
            if now - entry["at"] <= self.ttl_s:
                frames.append(entry["frame"])
        return frames

    async def update(self, connection: Connection, payload: dict[str, Any]) -> None:
        """At most `per_second` updates per user; a throttled update is sent late, not lost."""
        key = connection.id
        wait_s = self._last_sent.get(key, 0.0) + self.min_interval_s - time.monotonic()
        if wait_s > 0:
            first = key not in self._pending
            self._pending[key] = (connection.session_id, payload)
            if first:
                asyncio.get_running_loop().call_later(
                    wait_s, lambda: asyncio.ensure_future(self._flush(connection))
                )
            return
        await self._publish(connection, payload)

    async def _flush(self, connection: Connection) -> None:
        pending = self._pending.pop(connection.id, None)
        if pending is not None and not connection.closed.is_set():
            try:
                await self._publish(connection, pending[1])
            except StoreError:
                pass

    async def _publish(self, connection: Connection, payload: dict[str, Any]) -> None:
        self._last_sent[connection.id] = time.monotonic()
        frame = {"type": "presence", "user_id": connection.user_id, "payload": payload}
        text = json.dumps(frame, separators=(",", ":"))
        stored = json.dumps({"at": time.time(), "frame": frame}, separators=(",", ":"))
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(presence_key(connection.session_id), connection.user_id, stored)
        pipe.expire(presence_key(connection.session_id), self.ttl_s)
        pipe.publish(channel_of(connection.session_id), text)
        await guarded(pipe.execute())

    def forget(self, connection: Connection) -> None:
        self._last_sent.pop(connection.id, None)

    async def _relay_loop(self) -> None:
        while True:
            if not self.pubsub.subscribed:
                # Nothing to listen to until a client joins (no polling while idle).
                self._subscribed.clear()
                await self._subscribed.wait()
                continue
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("presence relay failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = message["channel"].decode()
            session_id = channel[channel.index("{") + 1 : channel.index("}")]
            frame = json.loads(message["data"])
            for connection in self.local.get(session_id, set()):
                if connection.user_id != frame["user_id"]:
                    connection.send_frame(frame)
