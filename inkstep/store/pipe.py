"""An asyncio Redis connection that pipelines without waiting.

Every command goes out in the event-loop tick it is given, whatever is still unanswered;
Redis answers a connection's commands in the order they arrived, so replies settle their
futures first in, first out. A writer that awaits each reply before sending the next (as a
redis-py pipeline per batch does) holds every later command behind one slow round trip;
here only the command's own reply is waited for, and only by whoever needs it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url

from inkstep.store.errors import StoreError, StoreUnavailable

CONNECT_TIMEOUT_S = 2.0
# Commands waiting and no reply for this long means Redis is stuck or gone: drop the
# connection. Measured from the last reply, not from when the oldest command was given: a
# busy Redis working through a deep pipeline is slow, not gone.
REPLY_TIMEOUT_S = 10.0

Arg = str | bytes | int


def pack(*args: Arg) -> bytes:
    """One command in RESP: an array of bulk strings. hiredis packs it in C: a gateway's
    fan-out read names every session's log, 18 µs a command packed in Python, 3 µs here."""
    packed: bytes = hiredis.pack_command(cast(Any, args))  # its stub types a 1-tuple
    return packed


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.pipe._progress_at = time.monotonic()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.pipe._settle(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe._lost(self, exc)


class RedisPipe:
    """One connection to the Redis at `url`, opened on first use and after a loss.

    `call` answers a future of the reply; an error reply fails it with StoreError, a lost or
    unreachable Redis with StoreUnavailable (a command whose reply was lost may still have
    run: callers retry only what is safe to repeat).
    """

    def __init__(self, url: str, reply_timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self._reply_timeout_s = reply_timeout_s
        self._address = RedisAddress.of(url)
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Task[None] | None = None
        self._unsent: list[bytes] = []
        # Futures of the commands not yet answered, oldest first (None: a handshake step of
        # the current connection, awaited by no one).
        self._waiting: collections.deque[asyncio.Future[Any] | None] = collections.deque()
        self._flush_scheduled = False
        # When replies last came in, or a command was given with none waiting before it.
        self._progress_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    def call(self, *args: Arg) -> asyncio.Future[Any]:
        """Send a command (in this tick, with any others given in it); its reply, later."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(StoreUnavailable("redis connection closed"))
            return future
        self._unsent.append(pack(*args))
        if not self._waiting:
            self._progress_at = time.monotonic()
        self._waiting.append(future)
        if self._protocol is None:
            if self._opening is None:
                self._opening = loop.create_task(self._open())
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._fail_all(StoreUnavailable("redis connection closed"))

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                address = self._address
                if address.path is not None:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self), address.path
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self), address.host, address.port,
                        ssl=ssl.create_default_context() if address.tls else None,
                    )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            self._opening = None
            self._fail_all(StoreUnavailable(f"redis is unreachable: {exc}"))
            return
        self._opening = None
        self._protocol = protocol
        # The handshake's replies come first; a refused one fails the commands behind it.
        handshake = [pack(*command) for command in self._address.handshake]
        self._waiting.extendleft(None for _ in handshake)
        self._unsent[:0] = handshake
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        protocol = self._protocol
        if protocol is None or protocol.transport is None or not self._unsent:
            return
        data, self._unsent = b"".join(self._unsent), []
        protocol.transport.write(data)
        if self._watchdog is None:
            self._watch()

    def _settle(self, reply: Any) -> None:
        future = self._waiting.popleft()
        if future is None:  # a handshake step: nothing behind a refused one may run
            if isinstance(reply, hiredis.ReplyError):
                self._drop(StoreUnavailable(f"redis refused the connection: {reply}"))
            return
        if future.done():
            return
        if isinstance(reply, hiredis.ReplyError):
            future.set_exception(StoreError(f"redis refused the command: {reply}"))
        else:
            future.set_result(reply)

    def _watch(self) -> None:
        delay = min(1.0, self._reply_timeout_s / 4)
        self._watchdog = asyncio.get_running_loop().call_later(delay, self._check_replies)

    def _check_replies(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        if time.monotonic() - self._progress_at > self._reply_timeout_s:
            self._drop(StoreUnavailable("redis did not answer in time"))
            return
        self._watch()

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._protocol = None
            self._fail_all(StoreUnavailable(f"redis connection lost: {exc or 'closed'}"))

    def _drop(self, error: StoreError) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()
        self._fail_all(error)

    def _fail_all(self, error: StoreError) -> None:
        waiting, self._waiting, self._unsent = self._waiting, collections.deque(), []
        for future in waiting:
            if future is not None and not future.done():
                future.set_exception(error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None


@dataclass(frozen=True)
class RedisAddress:
    """Where the Redis a URL names is (a Unix socket, else host and port, over TLS for
    rediss://) and the commands that open a session on it."""

    path: str | None
    host: str
    port: int
    tls: bool
    handshake: tuple[tuple[Arg, ...], ...]

    @classmethod
    def of(cls, url: str) -> RedisAddress:
        options: dict[str, Any] = dict(parse_url(url))
        tls = issubclass(options.get("connection_class", object), SSLConnection)
        return cls(options.get("path"), options.get("host", "localhost"),
                   int(options.get("port", 6379)), tls, tuple(_handshake(options)))  # fmt: skip


def _handshake(options: dict[str, Any]) -> list[tuple[Arg, ...]]:
    """AUTH and SELECT as the URL asks."""
    commands: list[tuple[Arg, ...]] = []
    password, username = options.get("password"), options.get("username")
    if password is not None:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    db = int(options.get("db", 0) or 0)
    if db:
        commands.append(("SELECT", db))
    return commands
