"""Backpressure, timeouts and rate limits, on a gateway configured with small limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from inkstep.client import InkstepClient
from tests.helpers import connect, eventually, line, new_session, session_token, unique
from tests.servers import GatewayProcess


@pytest.fixture(scope="module")
def tight_gateway(
    gateway_settings_env: dict[str, str], data_root: Path
) -> Iterator[GatewayProcess]:
    env = {
        **gateway_settings_env,
        "INKSTEP_SEND_QUEUE_FRAMES": "8",
        "INKSTEP_OPS_PER_SECOND": "5000",
        "INKSTEP_OPS_BURST": "5000",
        "INKSTEP_AUTH_TIMEOUT_S": "0.5",
        "INKSTEP_IDLE_TIMEOUT_S": "4",
    }
    gateway = GatewayProcess(env, data_root / "gateway-tight.log").start()
    try:
        yield gateway
    finally:
        gateway.stop()


async def test_slow_consumer_is_closed_with_4409_and_recovers_by_resume(
    tight_gateway: GatewayProcess,
) -> None:
    gw = tight_gateway
    teacher, slow_user = unique("tea"), unique("slow")
    session_id = await new_session(gw.url, teacher)
    token = await session_token(gw.url, slow_user, session_id, "student")
    fast = await connect(gw.ws_url, gw.url, teacher, session_id, "teacher")
    # max_queue=1: the slow client stops reading from the socket after one buffered frame.
    async with websockets.connect(gw.ws_url, max_queue=1, max_size=None) as slow:
        await slow.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
        assert json.loads(await slow.recv())["type"] == "welcome"
        snapshot = json.loads(await slow.recv())
        last_seen = snapshot["seq"]
        big = line(0, 0, n=512, dx=1.5)
        try:
            for _ in range(1500):
                await fast.draw_stroke(big)
                if slow.close_code is not None:
                    break
                await slow.send(json.dumps({"type": "ping", "t": 1}))
        except websockets.ConnectionClosed:
            pass
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:  # drain what was buffered; the close frame comes last
                frame = json.loads(await asyncio.wait_for(slow.recv(), 30))
                last_seen = frame.get("seq", last_seen) if "seq" in frame else last_seen
        assert slow.close_code == 4409
    await fast.wait_for(lambda: not fast.unconfirmed, timeout_s=60)
    resumed = InkstepClient(gw.ws_url, token, last_seq=last_seen)
    await resumed.start()
    try:
        await resumed.wait_seq(fast.last_seq or 0, timeout_s=60)
        seqs = [e["seq"] for e in resumed.events]
        if resumed.snapshot is None:
            assert seqs[0] == last_seen + 1
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        await resumed.close()
        await fast.close()


async def test_no_hello_in_time_closes_with_4408(tight_gateway: GatewayProcess) -> None:
    async with websockets.connect(tight_gateway.ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_unknown_session_closes_with_4404(tight_gateway: GatewayProcess) -> None:
    from inkstep.settings import Settings
    from inkstep.tokens import mint_session_token
    from tests.servers import TEST_SECRET

    token, _ = mint_session_token(Settings(secret_key=TEST_SECRET), "nosuchsession", "u", "student")
    async with websockets.connect(tight_gateway.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


async def test_silent_client_is_closed_after_idle_timeout(tight_gateway: GatewayProcess) -> None:
    gw = tight_gateway
    user = unique("idle")
    session_id = await new_session(gw.url, user)
    token = await session_token(gw.url, user, session_id, "teacher")
    async with websockets.connect(gw.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 15)
        assert ws.close_code == 1000 and ws.close_reason == "idle"


async def test_op_flood_is_rate_limited(gateways: list[GatewayProcess]) -> None:
    gw = gateways[0]
    user = unique("flood")
    session_id = await new_session(gw.url, user)
    client = await connect(gw.ws_url, gw.url, user, session_id, "teacher")
    try:
        for i in range(400):
            await client.send_raw(json.dumps({
                "type": "layer_set", "client_op_id": f"f{i}",
                "payload": {"layer": "ink", "props": {"opacity": 0.5}},
            }))  # fmt: skip
        await eventually(lambda: any(e["code"] == "rate_limited" for e in client.errors))
    finally:
        await client.close()
