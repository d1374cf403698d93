"""RedisPipe on a real Redis: commands go out without waiting, replies settle in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis

from inkstep.embedded import free_port
from inkstep.store.errors import StoreError, StoreUnavailable
from inkstep.store.pipe import REPLY_TIMEOUT_S, RedisPipe, pack
from inkstep.store.streams import connect_blocking
from tests.helpers import unique


@asynccontextmanager
async def opened(url: str, reply_timeout_s: float = REPLY_TIMEOUT_S) -> AsyncIterator[RedisPipe]:
    pipe = RedisPipe(url, reply_timeout_s)
    try:
        yield pipe
    finally:
        await pipe.close()


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[RedisPipe]:
    async with opened(redis_url) as pipe:
        yield pipe


@pytest.fixture
def plain(redis_url: str) -> Iterator[redis.Redis]:
    client = connect_blocking(redis_url)
    yield client
    client.close()


def test_pack_is_resp() -> None:
    assert pack("XADD", b"k\r\n", 7) == b"*3\r\n$4\r\nXADD\r\n$3\r\nk\r\n\r\n$1\r\n7\r\n"


async def test_replies_settle_in_the_order_commands_were_given(pipe: RedisPipe) -> None:
    key = unique("pipe-counter")
    first_tick = [pipe.call("INCR", key) for _ in range(50)]
    await asyncio.sleep(0)  # the first batch is on its way; these go out behind it
    second_tick = [pipe.call("INCR", key) for _ in range(50)]
    assert await asyncio.gather(*first_tick, *second_tick) == list(range(1, 101))


async def test_an_error_reply_fails_only_its_own_command(pipe: RedisPipe) -> None:
    key = unique("pipe-mixed")
    before, refused, after = pipe.call("INCR", key), pipe.call("XADD", key), pipe.call("GET", key)
    assert await before == 1
    with pytest.raises(StoreError, match="wrong number of arguments"):
        await refused
    assert await after == b"1"


async def test_a_lost_connection_fails_what_is_in_flight_then_reconnects(
    pipe: RedisPipe, plain: redis.Redis
) -> None:
    name = unique("pipe-conn")
    assert await pipe.call("CLIENT", "SETNAME", name) == b"OK"
    blocked = pipe.call("XREAD", "BLOCK", 5000, "STREAMS", unique("pipe-quiet"), "$")
    await asyncio.sleep(0.2)  # the read is blocking in Redis
    [victim] = [c for c in plain.client_list() if c["name"] == name]
    plain.client_kill_filter(_id=victim["id"])
    with pytest.raises(StoreUnavailable, match="lost"):
        await asyncio.wait_for(blocked, 5)
    assert await pipe.call("PING") == b"PONG"  # a new connection, opened by the next command


async def test_a_deep_pipeline_answered_slowly_is_not_taken_for_a_stuck_redis(
    redis_url: str,
) -> None:
    # Redis answers a connection's commands one after another: each blocking read below
    # waits 150 ms, so the last reply comes ~1.2 s after it was given, more than twice the
    # timeout, while a reply arrives every 150 ms.
    quiet = unique("pipe-slow")
    async with opened(redis_url, reply_timeout_s=0.5) as pipe:
        reads = [pipe.call("XREAD", "BLOCK", 150, "STREAMS", quiet, "$") for _ in range(8)]
        assert await asyncio.gather(*reads) == [None] * 8


async def test_a_redis_that_stops_answering_is_unavailable_then_the_pipe_reconnects(
    redis_url: str,
) -> None:
    async with opened(redis_url, reply_timeout_s=0.5) as pipe:
        stuck = pipe.call("XREAD", "BLOCK", 5000, "STREAMS", unique("pipe-stuck"), "$")
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable, match="did not answer in time"):
            await stuck
        assert asyncio.get_running_loop().time() - started < 2.0
        assert await pipe.call("PING") == b"PONG"


async def test_an_unreachable_redis_is_store_unavailable() -> None:
    async with opened(f"redis://127.0.0.1:{free_port()}/0") as pipe:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await pipe.call("PING")


async def test_the_url_selects_the_database(redis_url: str, plain: redis.Redis) -> None:
    key = unique("pipe-db")
    async with opened(redis_url.rsplit("/", 1)[0] + "/3") as pipe:
        assert await pipe.call("SET", key, "in three") == b"OK"
    assert plain.get(key) is None
    other = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    assert other.get(key) == b"in three"
    other.delete(key)
    other.close()


async def test_the_url_authenticates_and_a_refused_login_is_unavailable(
    redis_url: str, plain: redis.Redis
) -> None:
    user = unique("pipe-user")
    plain.acl_setuser(user, enabled=True, passwords=["+right"], keys=["*"], commands=["+@all"])
    host = redis_url.removeprefix("redis://")
    try:
        async with opened(f"redis://{user}:right@{host}") as pipe:
            assert await pipe.call("ACL", "WHOAMI") == user.encode()
        async with opened(f"redis://{user}:wrong@{host}") as wrong:
            with pytest.raises(StoreUnavailable, match="refused the connection"):
                await wrong.call("PING")
    finally:
        plain.acl_deluser(user)


async def test_a_closed_pipe_refuses_new_commands(redis_url: str) -> None:
    pipe = RedisPipe(redis_url)
    assert await pipe.call("PING") == b"PONG"
    await pipe.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await pipe.call("PING")
