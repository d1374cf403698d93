"""A session lets the connections of a gone gateway leave, and only a gateway gone for good."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.runner import SessionRunner
from inkstep.lessons import load_lesson_file
from inkstep.settings import Settings
from inkstep.store.blob import open_blob_store
from inkstep.store.streams import (
    connect_blocking,
    connection_id,
    decode_message,
    gateway_alive_key,
    inbox_key,
)
from tests.helpers import unique

LESSON = load_lesson_file(Path(__file__).parent.parent / "lessons" / "circles-101.json")


async def no_score(*_: Any) -> dict[str, Any]:
    return {}


def test_a_gateway_missing_at_two_checks_in_a_row_loses_its_connections(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, gateway_ttl_s=10)
    session_id, alive, dead = unique("lost"), unique("gw"), unique("gw")
    runner = SessionRunner(session_id, LESSON, settings, open_blob_store(f"file://{tmp_path}"),
                           no_score, lambda: None)  # fmt: skip
    for user, gateway in (("ann", alive), ("bob", dead)):
        joined = runner.core.decide_join(user, "student", connection_id(gateway, "c1"), 0)
        assert joined is not None
        runner.core.apply(joined)
    redis = connect_blocking(redis_url)
    redis.set(gateway_alive_key(alive), "1", ex=60)

    def check() -> list[dict[str, Any]]:
        runner.gateways_checked_at = 0.0  # as if half an expiry had passed
        runner._maybe_release_lost_connections()
        return [decode_message(f) for _, f in redis.xrange(inbox_key(session_id))]

    # Missing once, as every key is right after Redis was down: nobody leaves yet.
    assert check() == []
    left = check()
    assert [(m["kind"], m["user_id"], m["gateway"]) for m in left] == [("leave", "bob", dead)]
    # A gateway back in time is not gone (bob's leave is not handled yet: he is asked again).
    redis.delete(gateway_alive_key(alive))
    check()
    redis.set(gateway_alive_key(alive), "1", ex=60)
    assert {m["user_id"] for m in check()} == {"bob"}
    runner.redis.close()
