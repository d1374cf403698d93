"""InboxLink on a real Redis: writes and the next inbox read share one round trip."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from inkstep.store.errors import StoreConflict
from inkstep.store.inbox_link import InboxLink
from inkstep.store.streams import connect_blocking, inbox_key, log_key
from tests.helpers import unique


@dataclass
class Session:
    """A fresh session's inbox and log, a plain client on them, and a link that reads the
    inbox waiting at most 1 s."""

    inbox: str
    log: str
    client: redis.Redis
    link: InboxLink


@pytest.fixture
def session(redis_url: str) -> Iterator[Session]:
    session_id, client = unique("link"), connect_blocking(redis_url)
    link = InboxLink(redis_url, session_id, count=10, block_ms=1000)
    yield Session(inbox_key(session_id), log_key(session_id), client, link)
    link.reset()
    client.close()


def test_writes_are_answered_and_the_read_returns_what_arrives_later(session: Session) -> None:
    session.client.xadd(session.inbox, {"m": b"1"}, id="1-0")
    assert [fields for _, fields in session.link.read("0-0")] == [{b"m": b"1"}]

    replies = session.link.write([("XADD", session.log, "1-0", "e", b"x"),
                                  ("SET", unique("k"), "v")], then_read_from="1-0")  # fmt: skip
    assert replies[0] == b"1-0" and session.client.xlen(session.log) == 1
    # The read went out with the writes and waits in Redis: an op added now answers it.
    session.client.xadd(session.inbox, {"m": b"2"}, id="2-0")
    assert [fields for _, fields in session.link.read("1-0")] == [{b"m": b"2"}]


def test_a_refused_write_raises_and_the_next_read_starts_clean(session: Session) -> None:
    session.client.xadd(session.log, {"e": b"x"}, id="5-0")
    session.client.xadd(session.inbox, {"m": b"1"}, id="1-0")
    with pytest.raises(StoreConflict):
        session.link.write([("XADD", session.log, "5-0", "e", b"y")], then_read_from="1-0")
    # The read that went out with the refused write is gone; one from any cursor works.
    assert [entry_id for entry_id, _ in session.link.read("0-0")] == [b"1-0"]
    assert session.link.read("1-0") == []  # nothing newer: the blocking read times out empty


def test_a_read_in_flight_for_another_cursor_is_dropped(session: Session) -> None:
    session.client.xadd(session.inbox, {"m": b"1"}, id="1-0")
    session.client.xadd(session.inbox, {"m": b"2"}, id="2-0")
    session.link.write([("SET", unique("k"), "v")], then_read_from="2-0")
    # A rebuild moved the cursor back: the answer must come from there, not from 2-0.
    assert [entry_id for entry_id, _ in session.link.read("0-0")] == [b"1-0", b"2-0"]
