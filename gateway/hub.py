"""The fan-out reader: one XREAD BLOCK loop per gateway process over the logs of the
sessions its clients are in, plus its own replies stream (refusals, duplicate-acks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from gateway.connection import Connection
from gateway.inbox import InboxWriter
from inkstep.store.errors import StoreError
from inkstep.store.pipe import RedisPipe
from inkstep.store.streams import (
    connect,
    entry_fields,
    gateway_alive_key,
    guarded,
    log_key,
    replies_key,
    seq_of,
)

logger = logging.getLogger(__name__)

Revive = Callable[[str], Awaitable[None]]


@dataclass
class SessionFeed:
    """This process's view of one session's log."""

    last_id: str
    connections: set[Connection] = field(default_factory=set)
    # When the oldest op this gateway wrote to the inbox, not yet followed by any event, went in.
    unconfirmed_since: float | None = None


class Hub:
    """Routes log events and replies from Redis to the connections of this process."""

    def __init__(
        self, redis_url: str, gateway_id: str, revive: Revive, confirm_s: float, alive_ttl_s: float
    ) -> None:
        self.redis: aioredis.Redis = connect(redis_url)
        self.inbox = InboxWriter(redis_url)
        # The fan-out read blocks its connection: it has one of its own.
        self.reads = RedisPipe(redis_url)
        self.gateway_id = gateway_id
        self.revive = revive
        self.confirm_s = confirm_s
        self.alive_ttl_s = alive_ttl_s
        self.feeds: dict[str, SessionFeed] = {}
        self.connections: dict[str, Connection] = {}
        self._replies_id = "$"
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0

    async def start(self) -> None:
        last = await guarded(self.redis.xrevrange(replies_key(self.gateway_id), count=1))
        self._replies_id = last[0][0].decode() if last else "0-0"
        await self._renew_alive()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="hub-read"),
            asyncio.create_task(self._watchdog(), name="hub-watchdog"),
            asyncio.create_task(self._stay_alive(), name="hub-alive"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.inbox.stop()
        await self.reads.close()
        with contextlib.suppress(StoreError):
            await guarded(self.redis.delete(gateway_alive_key(self.gateway_id)))
        await self.redis.aclose()

    async def subscribe(self, connection: Connection) -> None:
        session_id = connection.session_id
        if session_id not in self.feeds:
            last = await guarded(self.redis.xrevrange(log_key(session_id), count=1))
            # Another connection of the session may have subscribed during the await: keep its
            # feed (replacing it would cut that connection off from every later event).
            if session_id not in self.feeds:
                self.feeds[session_id] = SessionFeed(last[0][0].decode() if last else "0-0")
                await self._wake()
        self.feeds[session_id].connections.add(connection)
        self.connections[connection.id] = connection

    def unsubscribe(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        feed = self.feeds.get(connection.session_id)
        if feed is not None:
            feed.connections.discard(connection)
            if not feed.connections:
                del self.feeds[connection.session_id]

    def seen_seq(self, session_id: str) -> int:
        """The newest seq this process has read from the session's log (and queued)."""
        feed = self.feeds.get(session_id)
        return seq_of(feed.last_id) if feed is not None else 0

    def op_written(self, session_id: str) -> None:
        feed = self.feeds.get(session_id)
        if feed is not None and feed.unconfirmed_since is None:
            feed.unconfirmed_since = time.monotonic()

    async def _wake(self) -> None:
        """Interrupt the blocking read so it picks up a new session."""
        await guarded(self.redis.xadd(replies_key(self.gateway_id), {"wake": "1"}, maxlen=10_000))

    async def _read_loop(self) -> None:
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                logger.warning("fan-out read failed: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:
                logger.exception("fan-out read failed")
                await asyncio.sleep(0.5)

    async def _read_once(self) -> None:
        streams = {log_key(sid): feed.last_id for sid, feed in self.feeds.items()}
        streams[replies_key(self.gateway_id)] = self._replies_id
        reply = await self.reads.call(
            "XREAD", "COUNT", 1000, "BLOCK", 5000, "STREAMS", *streams, *streams.values()
        )
        for stream, flat_entries in reply or ():
            name = stream.decode()
            entries = [(entry_id, entry_fields(flat)) for entry_id, flat in flat_entries]
            if name == replies_key(self.gateway_id):
                self._route_replies(entries)
            else:
                self._route_events(name, entries)

    def _route_events(self, stream: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        session_id = stream[stream.index("{") + 1 : stream.index("}")]
        feed = self.feeds.get(session_id)
        if feed is None:
            return
        feed.last_id = entries[-1][0].decode()
        feed.unconfirmed_since = None
        for entry_id, fields in entries:
            seq, raw = seq_of(entry_id), fields[b"e"].decode()
            for connection in feed.connections:
                connection.deliver_event(seq, raw)
            self.delivered += len(feed.connections)

    def _route_replies(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        self._replies_id = entries[-1][0].decode()
        for _, fields in entries:
            if b"m" not in fields:
                continue
            reply = json.loads(fields[b"m"])
            connection = self.connections.get(reply["connection"])
            if connection is not None:
                connection.send_frame(reply["frame"])
                feed = self.feeds.get(connection.session_id)
                if feed is not None:
                    feed.unconfirmed_since = None

    async def _renew_alive(self) -> None:
        key, ttl_ms = gateway_alive_key(self.gateway_id), int(self.alive_ttl_s * 1000)
        await guarded(self.redis.set(key, "1", px=ttl_ms))

    async def _stay_alive(self) -> None:
        """Sessions let the connections of a gateway whose key expired leave: renew it three
        times per expiry, so one slow or failed renewal does not count as gone."""
        while True:
            await asyncio.sleep(self.alive_ttl_s / 3)
            try:
                await self._renew_alive()
            except StoreError as exc:
                logger.warning("could not renew the gateway's presence: %s", exc)

    async def _watchdog(self) -> None:
        """An op unconfirmed for too long means the session actor may be gone: revive it."""
        while True:
            await asyncio.sleep(self.confirm_s / 2)
            now = time.monotonic()
            for session_id, feed in list(self.feeds.items()):
                since = feed.unconfirmed_since
                if since is not None and now - since > self.confirm_s:
                    feed.unconfirmed_since = now
                    with contextlib.suppress(Exception):
                        await self.revive(session_id)

    async def write_inbox(self, session_id: str, message: dict[str, Any] | str) -> None:
        """Hand an op (or a join/leave) to the session actor, waiting for Redis to take it."""
        await self.submit_inbox(session_id, message)

    def submit_inbox(self, session_id: str, message: dict[str, Any] | str) -> asyncio.Future[Any]:
        """Hand an op to the session actor, after every message submitted before it; the
        future fails with a StoreError if Redis did not take it."""
        self.op_written(session_id)
        return self.inbox.submit(session_id, message)
