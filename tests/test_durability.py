"""Nothing confirmed is lost: checkpoints, trims, idle exit, crashes, Redis and gateway faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from inkstep.client import InkstepClient
from inkstep.embedded import EmbeddedRedis
from inkstep.store import archive
from inkstep.store.blob import open_blob_store
from inkstep.store.streams import log_key
from tests.helpers import (
    comparable,
    connect,
    eventually,
    line,
    new_session,
    session_actor,
    session_token,
    unique,
    user_token,
)
from tests.servers import GatewayProcess, wait_until

DURABLE = {
    "INKSTEP_CHECKPOINT_EVERY_EVENTS": "20",
    "INKSTEP_STREAM_TAIL_EVENTS": "10",
    "INKSTEP_IDLE_EXIT_S": "2",
    "INKSTEP_OPS_PER_SECOND": "1000",
    "INKSTEP_OPS_BURST": "1000",
}


@pytest.fixture(scope="module")
def s3_env(s3_endpoint_url: str) -> dict[str, str]:
    return {
        "INKSTEP_BLOB_URL": "s3://inkstep-durability/blobs",
        "INKSTEP_S3_ENDPOINT_URL": s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture(scope="module")
def durable(
    gateway_settings_env: dict[str, str], data_root: Path, s3_env: dict[str, str]
) -> Iterator[GatewayProcess]:
    """A gateway whose sessions checkpoint to S3 (moto over HTTP) every 20 events."""
    env = {**gateway_settings_env, **DURABLE, **s3_env}
    gateway = GatewayProcess(env, data_root / "gateway-durable.log").start()
    try:
        yield gateway
    finally:
        gateway.stop()


def s3_blobs(s3_env: dict[str, str]) -> Any:
    os.environ.update({k: v for k, v in s3_env.items() if k.startswith("AWS_")})
    return open_blob_store(
        s3_env["INKSTEP_BLOB_URL"], s3_endpoint_url=s3_env["INKSTEP_S3_ENDPOINT_URL"]
    )


async def replay_of(gw: GatewayProcess, user: str, session_id: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
        response = await http.get(f"/v1/sessions/{session_id}/replay")
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def assert_complete(events: list[dict[str, Any]], confirmed: set[str]) -> None:
    """Seqs are 1..n without gaps, and every confirmed op is there exactly once."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    ops = [e["client_op_id"] for e in events if e["type"] == "stroke_append"]
    assert len(ops) == len(set(ops))
    assert confirmed <= set(ops)


def actor_alive(session_id: str) -> bool:
    try:
        session_actor(session_id)
        return True
    except ValueError:
        return False


async def test_kill_9_recovers_from_checkpoint_plus_stream(
    durable: GatewayProcess, s3_env: dict[str, str], redis_url: str
) -> None:
    user = unique("ann")
    session_id = await new_session(durable.url, user)
    a = await connect(durable.ws_url, durable.url, user, session_id, "teacher")
    try:
        sent = [await a.draw_stroke(line(10, 10 + i, n=4)) for i in range(45)]
        await a.wait_confirmed(sent[-1])
        blobs = s3_blobs(s3_env)
        wait_until(lambda: archive.latest_checkpoint(blobs, session_id) is not None)
        actor = session_actor(session_id)
        os.kill(await actor.pid.remote(), signal.SIGKILL)
        sent += [await a.draw_stroke(line(200, 10 + i, n=4)) for i in range(30)]
        await a.wait_for(lambda: not a.unconfirmed, timeout_s=60)
        before_kill = a.last_seq
    finally:
        await a.close()
    events = await replay_of(durable, user, session_id)
    assert_complete(events, set(sent))
    assert len(events) >= (before_kill or 0)
    assert archive.list_segments(blobs, session_id), "old events were archived before the trim"
    assert first_seq_in_stream(redis_url, session_id) > 1, "the stream was trimmed"


async def test_idle_exit_then_rejoin_continues_the_same_session(durable: GatewayProcess) -> None:
    user = unique("ann")
    session_id = await new_session(durable.url, user)
    a = await connect(durable.ws_url, durable.url, user, session_id, "teacher")
    ids = [await a.draw_stroke(line(20, 20 + i * 3)) for i in range(25)]
    await a.wait_confirmed(await a.undo(ids[3]))
    strokes_before, last_before = comparable(a.strokes), a.last_seq or 0
    await a.close()
    await eventually(lambda: not actor_alive(session_id), timeout_s=30)
    b = await connect(durable.ws_url, durable.url, user, session_id, "teacher")
    try:
        assert b.snapshot is not None and b.snapshot["seq"] >= last_before
        assert comparable(b.strokes) == strokes_before
        seq = await b.wait_confirmed(await b.draw_stroke(line(300, 300)))
        gap_events = [e for e in b.events if e["seq"] < seq]
        assert all(e["type"] == "participant" for e in gap_events)
        assert seq == b.snapshot["seq"] + len(gap_events) + 1
    finally:
        await b.close()
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=durable.url, headers=headers) as http:
        summary = (await http.get(f"/v1/sessions/{session_id}")).json()
    assert summary["last_seq"] >= seq


def first_seq_in_stream(redis_url: str, session_id: str) -> int:
    import redis

    first = redis.Redis.from_url(redis_url).xrange(log_key(session_id), count=1)
    return int(first[0][0].decode().split("-")[0]) if first else 0


async def test_resume_older_than_the_stream_tail_gets_a_snapshot(
    durable: GatewayProcess, redis_url: str
) -> None:
    user = unique("ann")
    session_id = await new_session(durable.url, user)
    a = await connect(durable.ws_url, durable.url, user, session_id, "teacher")
    try:
        ids = [await a.draw_stroke(line(5, 5 + i, n=3)) for i in range(70)]
        await a.wait_confirmed(ids[-1])
        await eventually(lambda: first_seq_in_stream(redis_url, session_id) > 3, timeout_s=30)
        token = await session_token(durable.url, unique("late"), session_id, "viewer")
        old = InkstepClient(durable.ws_url, token, last_seq=2)
        await old.start()
        try:
            assert old.welcome is not None and old.welcome["resume"] == "snapshot"
            await eventually(lambda: (old.last_seq or 0) >= (a.last_seq or 0))
            assert comparable(old.strokes) == comparable(a.strokes)
        finally:
            await old.close()
    finally:
        await a.close()
    assert_complete(await replay_of(durable, user, session_id), set(ids))


@pytest.fixture
def own_redis(data_root: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_root / unique("redis")).start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_restart_refuses_then_applies_everything_once(
    gateway_settings_env: dict[str, str], data_root: Path, own_redis: EmbeddedRedis
) -> None:
    env = {**gateway_settings_env, **DURABLE, "INKSTEP_REDIS_URL": own_redis.url}
    gw = GatewayProcess(env, data_root / "gateway-own-redis.log").start()
    user = unique("ann")
    try:
        session_id = await new_session(gw.url, user)
        a = await connect(gw.ws_url, gw.url, user, session_id, "teacher")
        try:
            sent = [await a.draw_stroke(line(10, 10 + i, n=3)) for i in range(10)]
            await a.wait_confirmed(sent[-1])
            own_redis.stop()
            sent += [await a.draw_stroke(line(100, 10 + i, n=3)) for i in range(10)]
            await a.wait_for(
                lambda: any(e["code"] == "unavailable" for e in a.errors), timeout_s=20
            )
            own_redis.start()
            await a.wait_for(lambda: not a.unconfirmed, timeout_s=60)
        finally:
            await a.close()
        assert_complete(await replay_of(gw, user, session_id), set(sent))
    finally:
        gw.stop()


async def test_clients_of_a_killed_gateway_resume_on_another(
    gateway_settings_env: dict[str, str], data_root: Path, gateways: list[GatewayProcess]
) -> None:
    doomed = GatewayProcess(gateway_settings_env, data_root / "gateway-doomed.log").start()
    other = gateways[0]
    user, watcher = unique("ann"), unique("bob")
    session_id = await new_session(other.url, user)
    token = await session_token(other.url, user, session_id, "teacher")
    a = InkstepClient([doomed.ws_url, other.ws_url], token, backoff_base_s=0.05)
    await a.start()
    b = await connect(other.ws_url, other.url, watcher, session_id)
    try:
        sent = [await a.draw_stroke(line(10, 10 + i, n=3)) for i in range(10)]
        await a.wait_confirmed(sent[-1])
        doomed.stop(signal.SIGKILL)
        sent += [await a.draw_stroke(line(100, 10 + i, n=3)) for i in range(10)]
        await a.wait_for(lambda: not a.unconfirmed, timeout_s=60)
        assert a.connections >= 2
        await b.wait_seq(a.last_seq or 0)
        assert comparable(a.strokes) == comparable(b.strokes)
    finally:
        await a.close()
        await b.close()
        doomed.stop()
    assert_complete(await replay_of(other, user, session_id), set(sent))


async def test_participants_of_a_killed_gateway_leave_the_session(
    gateway_settings_env: dict[str, str], data_root: Path, gateways: list[GatewayProcess]
) -> None:
    # The doomed gateway starts the session's actor, which takes its short expiry.
    env = {**gateway_settings_env, "INKSTEP_GATEWAY_TTL_S": "1"}
    doomed = GatewayProcess(env, data_root / "gateway-doomed-presence.log").start()
    other = gateways[0]
    teacher, student = unique("ann"), unique("bob")
    session_id = await new_session(doomed.url, teacher)
    b = await connect(doomed.ws_url, doomed.url, student, session_id)
    a = await connect(other.ws_url, other.url, teacher, session_id, "teacher")
    try:
        await eventually(lambda: set(a.participants) == {teacher, student}, timeout_s=10)
        doomed.stop(signal.SIGKILL)
        await eventually(lambda: set(a.participants) == {teacher}, timeout_s=20)
        headers = {"Authorization": f"Bearer {user_token(teacher)}"}
        async with httpx.AsyncClient(base_url=other.url, headers=headers) as http:
            info = (await http.get(f"/v1/sessions/{session_id}")).json()
        assert [p["user_id"] for p in info["participants"]] == [teacher]
    finally:
        await a.close()
        await b.close()
        doomed.stop()


async def test_sigterm_drains_with_1012(
    gateway_settings_env: dict[str, str], data_root: Path
) -> None:
    gw = GatewayProcess(gateway_settings_env, data_root / "gateway-drain.log").start()
    user = unique("ann")
    session_id = await new_session(gw.url, user)
    a = await connect(gw.ws_url, gw.url, user, session_id, "teacher")
    try:
        await a.wait_confirmed(await a.draw_stroke(line(1, 1)))
        await asyncio.to_thread(gw.stop, signal.SIGTERM)
        await eventually(lambda: 1012 in a.close_codes, timeout_s=20)
    finally:
        await a.close()


def test_the_embedded_redis_appends_every_write_and_rewrites_rarely(
    own_redis: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    config = client.config_get("*aof*") | client.config_get("append*")
    assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
    assert int(config["auto-aof-rewrite-min-size"]) == 512 * 1024 * 1024
