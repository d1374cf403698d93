"""InboxLink on a real Redis: writes and the next inbox read share one round trip."""

from __future__ import annotations

import threading

import pytest

from inkstep.store.errors import StoreConflict
from inkstep.store.inbox_link import InboxLink
from inkstep.store.streams import connect_blocking, inbox_key, log_key
from tests.helpers import unique


def test_writes_are_answered_and_the_read_returns_what_arrives_later(redis_url: str) -> None:
    session_id = unique("link")
    client = connect_blocking(redis_url)
    link = InboxLink(client, session_id, count=10, block_ms=2000)
    client.xadd(inbox_key(session_id), {"m": b"1"}, id="1-0")
    assert [fields for _, fields in link.read("0-0")] == [{b"m": b"1"}]

    replies = link.write([("XADD", log_key(session_id), "1-0", "e", b"x"),
                          ("SET", unique("k"), "v")], then_read_from="1-0")  # fmt: skip
    assert replies[0] == b"1-0" and client.xlen(log_key(session_id)) == 1
    # The read is already waiting in Redis: an op added now answers it.
    threading.Timer(0.2, client.xadd, (inbox_key(session_id), {"m": b"2"})).start()
    assert [fields for _, fields in link.read("1-0")] == [{b"m": b"2"}]
    link.reset()


def test_a_refused_write_raises_and_the_next_read_starts_clean(redis_url: str) -> None:
    session_id = unique("link")
    client = connect_blocking(redis_url)
    link = InboxLink(client, session_id, count=10, block_ms=100)
    client.xadd(log_key(session_id), {"e": b"x"}, id="5-0")
    client.xadd(inbox_key(session_id), {"m": b"1"}, id="1-0")
    with pytest.raises(StoreConflict):
        link.write([("XADD", log_key(session_id), "5-0", "e", b"y")], then_read_from="1-0")
    # The read that went out with the refused write is gone; one from any cursor works.
    assert [entry_id for entry_id, _ in link.read("0-0")] == [b"1-0"]
    assert link.read("1-0") == []  # nothing newer: the blocking read times out empty
    link.reset()


def test_a_read_in_flight_for_another_cursor_is_dropped(redis_url: str) -> None:
    session_id = unique("link")
    client = connect_blocking(redis_url)
    link = InboxLink(client, session_id, count=10, block_ms=100)
    client.xadd(inbox_key(session_id), {"m": b"1"}, id="1-0")
    client.xadd(inbox_key(session_id), {"m": b"2"}, id="2-0")
    link.write([("SET", unique("k"), "v")], then_read_from="2-0")
    # A rebuild moved the cursor back: the answer must come from there, not from 2-0.
    assert [entry_id for entry_id, _ in link.read("0-0")] == [b"1-0", b"2-0"]
    link.reset()
