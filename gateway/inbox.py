"""Writes ops to session inboxes, pipelining every op of one event-loop tick together.

Each caller still awaits its own op (so a connection's ops stay in order and a refusal can
be answered), but one Redis round trip carries all the ops that arrived in the same tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from inkstep.store.errors import StoreError
from inkstep.store.streams import encode_message, guarded, inbox_key

Pending = tuple[str, dict[Any, Any], asyncio.Future[None]]


class InboxWriter:
    """Coalesces XADDs to session inboxes into one pipeline per loop tick."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._pending: list[Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def write(self, session_id: str, message: dict[str, Any] | str) -> None:
        """Append one message (a dict, or its JSON text) to a session's inbox; StoreError if
        Redis refused it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush_now)
        fields = encode_message(message) if isinstance(message, dict) else {"m": message}
        self._pending.append((session_id, fields, done))
        await done

    def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[Pending]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for session_id, fields, _ in batch:
            pipe.xadd(inbox_key(session_id), fields)
        try:
            await guarded(pipe.execute())
        except StoreError as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)

    async def stop(self) -> None:
        await asyncio.gather(*self._flushes, return_exceptions=True)
