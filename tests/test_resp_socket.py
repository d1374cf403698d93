"""RespSocket on a real Redis: replies in order, errors raised, and no hang on a silent or
closed connection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from inkstep.store.errors import StoreUnavailable
from inkstep.store.inbox_link import InboxLink
from inkstep.store.resp_socket import RespSocket
from inkstep.store.streams import connect_blocking
from tests.helpers import unique


@pytest.fixture
def control(redis_url: str) -> Iterator[redis.Redis]:
    client = connect_blocking(redis_url)
    yield client
    client.close()


def test_replies_come_in_order_and_an_error_reply_raises(
    redis_url: str, control: redis.Redis
) -> None:
    link = RespSocket(redis_url, timeout_s=5.0)
    key, stream = unique("k"), unique("s")
    control.xadd(stream, {"e": b"x"}, id="5-0")
    link.send([("SET", key, "v"), ("XADD", stream, "5-0", "e", b"y"), ("GET", key)])
    assert link.reply() == b"OK"
    with pytest.raises(ResponseError, match="equal or smaller"):
        link.reply()
    assert link.reply() == b"v"  # the connection goes on after an error reply
    link.close()


def test_the_url_chooses_the_database(redis_url: str, control: redis.Redis) -> None:
    other_db = urlsplit(redis_url)._replace(path="/3").geturl()
    link, key = RespSocket(other_db, timeout_s=5.0), unique("k")
    link.send([("SET", key, "in 3")])
    assert link.reply() == b"OK"
    link.close()
    assert control.get(key) is None
    elsewhere = redis.Redis.from_url(other_db)
    assert elsewhere.get(key) == b"in 3"
    elsewhere.delete(key)
    elsewhere.close()


def test_a_connection_closed_by_redis_raises(redis_url: str, control: redis.Redis) -> None:
    link = RespSocket(redis_url, timeout_s=5.0)
    link.send([("CLIENT", "ID")])
    client_id = link.reply()
    link.send([("XREAD", "BLOCK", 3000, "STREAMS", unique("s"), "$")])
    control.client_kill_filter(_id=client_id)
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        link.reply()
    assert time.monotonic() - started < 2.0  # told at once, not at the read's end
    link.close()


def test_a_redis_that_stops_answering_ends_the_read_with_an_error(
    redis_url: str, control: redis.Redis
) -> None:
    link = InboxLink(redis_url, unique("silent"), count=10, block_ms=100, reply_timeout_s=0.5)
    assert link.read("0-0") == []  # connected, nothing there
    control.client_pause(2000, all=True)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            link.read("0-0")
        assert time.monotonic() - started < 1.5  # the link's 0.5 s, not the pause's 2 s
    finally:
        control.client_unpause()
    assert link.read("0-0") == []  # the link connects again
    link.reset()


def test_an_unreachable_redis_is_store_unavailable() -> None:
    link = InboxLink("redis://127.0.0.1:1/0", unique("nowhere"), count=10, block_ms=100)
    with pytest.raises(StoreUnavailable):
        link.read("0-0")
