"""Sessions that share host actors (`INKSTEP_SESSION_HOSTS`): two gateway processes, real
Ray, Redis and Postgres. Each session keeps its own order, survives kill -9 of its host, and
leaves its host when idle without taking the others with it."""

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
import ray

from actors.session_host import host_index, host_name, registry_key
from inkstep.client import InkstepClient
from inkstep.store.streams import connect_blocking
from tests.helpers import connect, eventually, line, new_session, unique, user_token
from tests.servers import GatewayProcess, gateway_env

HOSTS = 2
HOSTED_NAMESPACE = "inkstep-tests-hosted"
IDLE_EXIT_S = 2.0


@pytest.fixture(scope="module")
def hosted(
    redis_url: str, database_url: str, ray_address: str, data_root: Path
) -> Iterator[list[GatewayProcess]]:
    """Two gateway processes whose sessions live in HOSTS shared host actors."""
    env = gateway_env(redis_url, database_url, ray_address, data_root / "hosted",
                      INKSTEP_SESSION_HOSTS=str(HOSTS), INKSTEP_RAY_NAMESPACE=HOSTED_NAMESPACE,
                      INKSTEP_IDLE_EXIT_S=str(IDLE_EXIT_S))  # fmt: skip
    started = [GatewayProcess(env, data_root / f"hosted-{i}.log").start() for i in range(2)]
    try:
        yield started
    finally:
        for gateway in started:
            gateway.stop()
        for index in range(HOSTS):
            try:
                ray.kill(ray.get_actor(host_name(index), namespace=HOSTED_NAMESPACE))
            except ValueError:
                continue


def host_of(session_id: str) -> Any:
    return ray.get_actor(host_name(host_index(session_id, HOSTS)), namespace=HOSTED_NAMESPACE)


async def sessions_sharing_a_host(gateway: GatewayProcess, teacher: str) -> list[str]:
    """Two new sessions that hash to the same host (one of any three does)."""
    created: dict[int, list[str]] = {}
    while True:
        session_id = await new_session(gateway.url, teacher)
        same = created.setdefault(host_index(session_id, HOSTS), [])
        same.append(session_id)
        if len(same) == 2:
            return same


async def pair(gateways: list[GatewayProcess], session_id: str, teacher: str
               ) -> tuple[InkstepClient, InkstepClient]:  # fmt: skip
    """The session's teacher on one gateway and a student on the other."""
    a_gw, b_gw = gateways
    a = await connect(a_gw.ws_url, a_gw.url, teacher, session_id, "teacher")
    b = await connect(b_gw.ws_url, b_gw.url, unique("stu"), session_id)
    return a, b


async def replay(gateway: GatewayProcess, user: str, session_id: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as http:
        text = (await http.get(f"/v1/sessions/{session_id}/replay")).text
    return [json.loads(line) for line in text.splitlines()]


async def test_sessions_on_one_host_keep_their_own_order(hosted: list[GatewayProcess]) -> None:
    teacher = unique("tea")
    first, second = await sessions_sharing_a_host(hosted[0], teacher)
    clients = {sid: await pair(hosted, sid, teacher) for sid in (first, second)}
    try:
        drawn: dict[str, list[str]] = {first: [], second: []}
        for i in range(6):
            for sid, (a, b) in clients.items():
                drawn[sid].append(await (a if i % 2 else b).draw_stroke(line(50, 20 + i * 10)))
        for sid, (a, b) in clients.items():
            last = max([await a.wait_confirmed(op) for op in drawn[sid][1::2]]
                       + [await b.wait_confirmed(op) for op in drawn[sid][::2]])  # fmt: skip
            await a.wait_seq(last)
            await b.wait_seq(last)
            assert set(a.strokes) == set(b.strokes) == set(drawn[sid])
            seqs = [e["seq"] for e in b.events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert set(await host_of(first).sessions.remote()) >= {first, second}
    finally:
        for a, b in clients.values():
            await a.close()
            await b.close()


async def test_kill_9_of_a_host_loses_no_confirmed_event(hosted: list[GatewayProcess]) -> None:
    teacher = unique("tea")
    sessions = await sessions_sharing_a_host(hosted[0], teacher)
    clients = {sid: await pair(hosted, sid, teacher) for sid in sessions}
    sent: dict[str, list[str]] = {sid: [] for sid in sessions}

    async def draw(session_id: str, count: int) -> None:
        a, _ = clients[session_id]
        for i in range(count):
            sent[session_id].append(await a.draw_stroke(line(10, 10 + (i % 50) * 10, n=5)))
            await asyncio.sleep(0.01)

    try:
        drawing = [asyncio.create_task(draw(sid, 80)) for sid in sessions]
        await eventually(lambda: all(len(ops) > 20 for ops in sent.values()))
        os.kill(await host_of(sessions[0]).pid.remote(), signal.SIGKILL)
        await asyncio.gather(*drawing)
        for a, b in clients.values():
            await a.wait_for(lambda a=a: not a.unconfirmed, timeout_s=60)  # type: ignore[misc]
            await b.wait_seq(a.last_seq or 0, timeout_s=30)
    finally:
        for a, b in clients.values():
            await a.close()
            await b.close()
    for sid in sessions:
        events = await replay(hosted[0], teacher, sid)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        strokes = [e["client_op_id"] for e in events if e["type"] == "stroke_append"]
        assert sorted(strokes) == sorted(sent[sid])  # every confirmed op, exactly once


async def test_an_idle_session_leaves_its_host_and_comes_back(
    hosted: list[GatewayProcess], redis_url: str
) -> None:
    teacher = unique("tea")
    idle, busy = await sessions_sharing_a_host(hosted[0], teacher)
    clients = await pair(hosted, idle, teacher)
    host = host_of(idle)
    stroke = await clients[0].draw_stroke(line(30, 30))
    await clients[0].wait_confirmed(stroke)
    keeps, keeps_b = await pair(hosted, busy, teacher)
    try:
        for client in clients:
            await client.close()
        registry = connect_blocking(redis_url)
        key = registry_key(host_index(idle, HOSTS))
        await eventually(lambda: registry.hget(key, idle) is None, timeout_s=IDLE_EXIT_S + 15)
        assert idle not in await host.sessions.remote()
        assert busy in await host.sessions.remote()  # the host stays, with its other session
        seq = await keeps.wait_confirmed(await keeps.draw_stroke(line(40, 40)))
        await keeps_b.wait_seq(seq)
        back = await connect(hosted[1].ws_url, hosted[1].url, unique("stu"), idle)
        try:
            await back.wait_for(lambda: stroke in back.strokes)
            assert idle in await host.sessions.remote()
        finally:
            await back.close()
        registry.close()
    finally:
        await keeps.close()
        await keeps_b.close()


async def test_a_host_back_from_kill_9_opens_its_sessions_again(
    hosted: list[GatewayProcess],
) -> None:
    teacher = unique("tea")
    sessions = await sessions_sharing_a_host(hosted[0], teacher)
    clients = [await pair(hosted, sid, teacher) for sid in sessions]
    try:
        old_pid = await host_of(sessions[0]).pid.remote()
        os.kill(old_pid, signal.SIGKILL)

        async def reopened() -> bool:
            host = host_of(sessions[0])
            return await host.pid.remote() != old_pid and set(sessions) <= set(
                await host.sessions.remote()
            )

        # Nothing is sent meanwhile, so no gateway asks for the sessions: the host's own
        # list brings them back.
        deadline = asyncio.get_running_loop().time() + 30
        while not await reopened():
            assert asyncio.get_running_loop().time() < deadline, "sessions not reopened"
            await asyncio.sleep(0.2)
        a, b = clients[0]
        seq = await a.wait_confirmed(await a.draw_stroke(line(60, 60)))
        await b.wait_seq(seq)
    finally:
        for a, b in clients:
            await a.close()
            await b.close()
