"""Redis Streams of a session: the inbox (ops in), the log (events out) and gateway replies.

Keys carry the session id as a hash tag (`inkstep:{<id>}:…`) so one session's keys stay on
one Redis Cluster shard. Log entry ids are `<seq>-0`: Redis refuses a second writer of the
same seq, and `XRANGE` by seq needs no index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from inkstep.store.errors import StoreConflict, StoreError, StoreUnavailable


def inbox_key(session_id: str) -> str:
    return f"inkstep:{{{session_id}}}:inbox"


def log_key(session_id: str) -> str:
    return f"inkstep:{{{session_id}}}:log"


def cursor_key(session_id: str) -> str:
    """The id of the last inbox entry the session actor has fully handled."""
    return f"inkstep:{{{session_id}}}:cursor"


def scoring_key(session_id: str) -> str:
    """Step completions being scored: asked for, not yet answered by a score_update."""
    return f"inkstep:{{{session_id}}}:scoring"


def meta_key(session_id: str) -> str:
    return f"inkstep:{{{session_id}}}:meta"


def replies_key(gateway_id: str) -> str:
    return f"inkstep:gw:{gateway_id}:replies"


def gateway_alive_key(gateway_id: str) -> str:
    """Present while the gateway runs: it renews the key well within its expiry."""
    return f"inkstep:gw:{gateway_id}:alive"


def connection_id(gateway_id: str, unique: str) -> str:
    """A connection's id names its gateway, so a session can tell whose connections they
    are when that gateway is gone."""
    return f"{gateway_id}.{unique}"


def gateway_of(connection: str) -> str | None:
    gateway_id, dot, _ = connection.partition(".")
    return gateway_id if dot else None


def entry_fields(flat: list[bytes]) -> dict[bytes, bytes]:
    """A stream entry's fields, from the flat [field, value, …] list Redis answers."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def connect(url: str) -> aioredis.Redis:
    """An asyncio Redis client that fails fast when the server is unreachable.

    A command that finds its pooled connection closed (Redis restarted since) is sent once
    more on a new one. Ops never go through this client (they are not safe to repeat: see
    `RedisPipe`); what does is a read, an expiring key or a presence relay.
    """
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=15,
        retry=Retry(NoBackoff(), retries=1), retry_on_error=[RedisConnectionError],
    )  # fmt: skip


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn Redis library errors raised inside the block into the store's own."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"redis is unreachable: {exc}") from exc
    except ResponseError as exc:
        if "equal or smaller" in str(exc):
            raise StoreConflict(f"log entry already written: {exc}") from exc
        raise StoreError(f"redis refused the command: {exc}") from exc
    except RedisError as exc:
        raise StoreError(f"redis error: {exc}") from exc


async def guarded(call: Awaitable[Any]) -> Any:
    """Await a Redis call, turning library errors into the store's own."""
    with store_errors():
        return await call


def connect_blocking(url: str) -> redis.Redis:
    """A blocking Redis client, for a loop on a thread of its own (the session actor's):
    per command it costs a fraction of what the asyncio client does."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()


class SessionLog:
    """Reads of one session's log: tails, ranges and its last seq."""

    def __init__(self, client: aioredis.Redis, session_id: str) -> None:
        self.client = client
        self.key = log_key(session_id)

    async def last_seq(self) -> int:
        entries = await guarded(self.client.xrevrange(self.key, count=1))
        return seq_of(entries[0][0]) if entries else 0

    async def events_after(self, seq: int, upto: int | None = None) -> list[str]:
        """Raw event JSON with `seq` < event seq <= `upto`, in order."""
        end = f"{upto}-0" if upto is not None else "+"
        entries = await guarded(self.client.xrange(self.key, f"({seq}-0", end))
        return [fields[b"e"].decode() for _, fields in entries]

    async def whole_tail(self, seq: int, upto: int) -> list[str] | None:
        """The events after `seq` up to `upto`, or None when the stream no longer holds all
        of them. Whether the tail is whole is read from the tail itself: a checkpoint may trim
        the stream at any moment, so a separate look at its first seq could be older than the
        read and let a tail with a gap through."""
        events = await self.events_after(seq, upto=upto)
        return events if len(events) == upto - seq else None  # seqs are consecutive

    async def step_now(self, recorded_step: str, recorded_seq: int) -> tuple[str, int]:
        """(step, last seq) as of the log's newest event: the session record's step (written
        a moment after the events, as of `recorded_seq`) brought forward by the step changes
        the log holds after it. If the log no longer holds every event after the record (its
        progress was not written), the record's step stands with the log's last seq."""
        entries = await guarded(self.client.xrange(self.key, f"({recorded_seq}-0", "+"))
        if not entries:
            return recorded_step, recorded_seq
        last_seq = seq_of(entries[-1][0])  # seqs from the entry ids: no event is parsed for them
        if seq_of(entries[0][0]) != recorded_seq + 1:
            return recorded_step, last_seq
        step = recorded_step
        for _, fields in entries:
            if b'"step_change"' in fields[b"e"]:  # parse only the few that may be one
                event = orjson.loads(fields[b"e"])
                if event["type"] == "step_change":
                    step = event["payload"]["to_step"]
        return step, last_seq


READ_PAGE_EVENTS = 200


class BlockingSessionLog:
    """The reads of SessionLog that the session actor's own loop needs, blocking."""

    def __init__(self, client: redis.Redis, session_id: str) -> None:
        self.client = client
        self.key = log_key(session_id)

    def first_seq(self) -> int:
        """The oldest seq still in the stream (0 when empty)."""
        with store_errors():
            entries: Any = self.client.xrange(self.key, count=1)
        return seq_of(entries[0][0]) if entries else 0

    def events_after(
        self, seq: int, upto: int | None = None, rest: Callable[[], None] | None = None
    ) -> list[str]:
        """Raw event JSON with `seq` < event seq <= `upto`, in order, a page at a time."""
        return [event for _, event in self.numbered_events_after(seq, upto, rest)]

    def numbered_events_after(
        self, seq: int, upto: int | None = None, rest: Callable[[], None] | None = None
    ) -> list[tuple[int, str]]:
        """(seq, raw event JSON) with `seq` < event seq <= `upto`, in order; the seqs come from
        the entry ids.

        Read a page at a time: parsing a whole tail in one call holds the GIL for as long as
        it takes (~10 ms for 2000 events), and the session's op thread waits that long.
        `rest` is called after each page (a paced checkpoint)."""
        end = f"{upto}-0" if upto is not None else "+"
        events: list[tuple[int, str]] = []
        start = f"({seq}-0"
        while True:
            with store_errors():
                entries: Any = self.client.xrange(self.key, start, end, count=READ_PAGE_EVENTS)
            events.extend((seq_of(entry_id), fields[b"e"].decode()) for entry_id, fields in entries)
            if len(entries) < READ_PAGE_EVENTS:
                return events
            if rest is not None:
                rest()
            start = f"({entries[-1][0].decode()}"


def encode_message(message: dict[str, Any]) -> dict[Any, Any]:
    return {"m": orjson.dumps(message)}


def decode_message(fields: dict[bytes, bytes]) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(fields[b"m"])
    return value


ReplyHandler = Callable[[dict[str, Any]], None]
