"""The session loop's own Redis connection: a batch's writes and the next inbox read travel
together.

The loop reads a batch from the inbox, decides it, writes the events, then reads again. Sent
as two round trips, that is four system calls per batch, and on this kind of machine a system
call costs about 50 µs: more than deciding the batch. Here the writes and the next (blocking)
`XREAD` go out in one send; Redis answers the writes at once and the read when ops arrive.
The connection is a RespSocket: redis-py's layers cost about as much as deciding an op.
"""

from __future__ import annotations

from typing import Any

from inkstep.store.resp_socket import Command, RespSocket
from inkstep.store.streams import entry_fields, inbox_key, store_errors

Entry = tuple[bytes, dict[bytes, bytes]]

# How long a reply may take; reads block in Redis for block_ms at most, so only a Redis that
# stopped answering gets near it.
REPLY_TIMEOUT_S = 10.0


class InboxLink:
    """One connection, used by one thread: `write` and `read` alternate with at most one
    inbox read outstanding."""

    def __init__(self, redis_url: str, session_id: str, count: int, block_ms: int,
                 reply_timeout_s: float = REPLY_TIMEOUT_S) -> None:  # fmt: skip
        self._url, self._timeout_s = redis_url, reply_timeout_s
        self._connection: RespSocket | None = None
        self._read_from: str | None = None  # the cursor of the read in flight, if any
        self._inbox = inbox_key(session_id)
        self._count, self._block_ms = count, block_ms

    def write(self, commands: list[Command], then_read_from: str) -> list[Any]:
        """Run `commands` (their replies are read before this returns; an error reply raises
        StoreError and drops the connection) and start the inbox read after `then_read_from`."""
        if self._read_from is not None:
            raise RuntimeError("an inbox read is in flight: read it before writing")
        connection = self._open()
        try:
            with store_errors():
                connection.send([*commands, self._xread(then_read_from)])
                self._read_from = then_read_from
                return [connection.reply() for _ in commands]
        except BaseException:
            self.reset()
            raise

    def read(self, cursor: str) -> list[Entry]:
        """The inbox entries after `cursor` (waiting up to block_ms for some), oldest first."""
        if self._read_from is not None and self._read_from != cursor:
            self.reset()  # the cursor moved (a rebuild): that read asks for the wrong entries
        connection = self._open()
        try:
            with store_errors():
                if self._read_from is None:
                    connection.send([self._xread(cursor)])
                    self._read_from = cursor
                reply = connection.reply()
        except BaseException:
            self.reset()
            raise
        self._read_from = None
        if not reply:
            return []
        # RESP3 answers a map of stream to entries, RESP2 a list of [stream, entries].
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        return [(entry_id, entry_fields(fields)) for entry_id, fields in entries]

    def reset(self) -> None:
        """Drop the connection and whatever was in flight on it."""
        if self._connection is not None:
            self._connection.close()
        self._connection, self._read_from = None, None

    def _open(self) -> RespSocket:
        if self._connection is None:
            with store_errors():
                self._connection = RespSocket(self._url, self._timeout_s)
        return self._connection

    def _xread(self, cursor: str) -> Command:
        return ("XREAD", "COUNT", self._count, "BLOCK", self._block_ms,
                "STREAMS", self._inbox, cursor)  # fmt: skip
