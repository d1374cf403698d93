"""Writes ops to session inboxes over one pipelined connection.

An op's XADD goes out in the tick the op arrived, behind whatever is still unanswered on the
connection, and in the order the ops arrived: so a connection's next op need not wait for
the previous one's reply to stay in order. Only a failure is waited for (by a callback that
answers the client).
"""

from __future__ import annotations

import asyncio
from typing import Any

from inkstep.store.pipe import RedisPipe
from inkstep.store.streams import encode_message, inbox_key


class InboxWriter:
    """XADDs to session inboxes, in the order they are asked for."""

    def __init__(self, redis_url: str) -> None:
        self.pipe = RedisPipe(redis_url)

    def submit(self, session_id: str, message: dict[str, Any] | str) -> asyncio.Future[Any]:
        """Append one message (a dict, or its JSON text) to a session's inbox; the future
        fails with StoreError if Redis refused it or StoreUnavailable if it is unreachable."""
        text = encode_message(message)["m"] if isinstance(message, dict) else message
        return self.pipe.call("XADD", inbox_key(session_id), "*", "m", text)

    async def write(self, session_id: str, message: dict[str, Any] | str) -> None:
        """`submit`, waiting for Redis to take it."""
        await self.submit(session_id, message)

    async def stop(self) -> None:
        await self.pipe.close()
