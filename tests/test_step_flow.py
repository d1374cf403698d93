"""Steps that teach: scoring on Ray, advancing on a pass, results in Postgres, plans, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import ray
import redis

from gateway.rest import effective_user
from inkstep.settings import Settings
from inkstep.store.database import Database
from inkstep.store.streams import scoring_key
from inkstep.tokens import UserClaims
from tests.helpers import connect, eventually, new_session, session_actor, unique, user_token
from tests.servers import GatewayProcess


def straight(x1: float, x2: float, y: float, n: int = 120) -> list[list[float]]:
    """A steady stroke along y from x1 to x2, sampled like a 60 Hz pointer."""
    return [[x1 + (x2 - x1) * i / (n - 1), y, 0.5, i * 16.0] for i in range(n)]


async def test_a_good_drawing_advances_and_a_poor_one_does_not(
    gateways: list[GatewayProcess],
) -> None:
    gw = gateways[0]
    teacher, good, poor = unique("tea"), unique("good"), unique("poor")
    session_id = await new_session(gw.url, teacher)
    t = await connect(gw.ws_url, gw.url, teacher, session_id, "teacher")
    p = await connect(gw.ws_url, gw.url, poor, session_id)
    g = await connect(gw.ws_url, gw.url, good, session_id)
    try:
        await p.wait_confirmed(await p.draw_stroke(straight(150, 260, 380)))
        done = await p.step_complete("s1")
        await p.wait_confirmed(done, timeout_s=60)
        poor_score = next(s for s in p.scores if s["user_id"] == poor)
        assert poor_score["passed"] is False and p.step_id == "s1"

        await g.wait_confirmed(await g.draw_stroke(straight(150, 650, 300)))
        done = await g.step_complete("s1")
        await g.wait_confirmed(done, timeout_s=60)
        await t.wait_for(lambda: t.step_id == "s2", timeout_s=30)
        good_score = next(s for s in g.scores if s["user_id"] == good)
        assert good_score["passed"] is True and good_score["accuracy"] > poor_score["accuracy"]
        change = [e for e in t.events if e["type"] == "step_change"][-1]
        assert change["payload"] == {"from_step": "s1", "to_step": "s2", "reason": "passed"}
        assert change["author"] == "server"
        headers = {"Authorization": f"Bearer {user_token(teacher)}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            summary = (await http.get(f"/v1/sessions/{session_id}")).json()
        # At once: the step as of its last_seq, whether or not Postgres has it yet.
        assert (summary["step_id"], summary["last_seq"]) == ("s2", t.last_seq)
    finally:
        for client in (t, p, g):
            await client.close()
    headers = {"Authorization": f"Bearer {user_token(teacher)}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
        for _ in range(100):
            results = (await http.get(f"/v1/sessions/{session_id}/results")).json()
            if len(results) == 2:
                break
        by_user = {r["user_id"]: r for r in results}
        assert by_user[good]["passed"] is True and by_user[poor]["passed"] is False
        summary = (await http.get(f"/v1/sessions/{session_id}")).json()
        assert summary["step_id"] == "s2"


async def test_plans_come_from_postgres_in_production(database_url: str) -> None:
    settings = Settings(plans_from="database")
    user = unique("sub")
    async with Database(database_url) as db:
        await db.migrate()
        claims = UserClaims(user, "pro", False)  # the token's claim is not trusted here
        assert (await effective_user(settings, db, claims)).plan == "free"
        await db.upsert_user(user, "free")
        await db.set_subscription(user, "pro")
        assert (await effective_user(settings, db, claims)).plan == "pro"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inkstep.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


async def test_replay_export_matches_the_route(
    gateways: list[GatewayProcess], gateway_settings_env: dict[str, str], tmp_path: Path
) -> None:
    gw = gateways[0]
    user = unique("ann")
    session_id = await new_session(gw.url, user)
    a = await connect(gw.ws_url, gw.url, user, session_id, "teacher")
    try:
        await a.wait_confirmed(await a.draw_stroke(straight(10, 90, 40, n=10)))
    finally:
        await a.close()
    out = tmp_path / "replay.ndjson"
    done = run_cli(gateway_settings_env, "replay", "export", session_id, "-o", str(out))
    assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
        route = (await http.get(f"/v1/sessions/{session_id}/replay")).text
    exported = out.read_text()
    assert exported.splitlines()[: len(route.splitlines())] == route.splitlines()
    assert any(json.loads(x)["type"] == "stroke_append" for x in exported.splitlines())


async def test_lessons_import_validates_and_upserts(
    gateway_settings_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    gateways: list[GatewayProcess],
) -> None:
    lesson: dict[str, Any] = json.loads(
        (Path(__file__).parent.parent / "lessons" / "circles-101.json").read_text()
    )
    lesson["id"] = unique("imported")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(lesson))
    done = run_cli(gateway_settings_env, "lessons", "import", str(good))
    assert done.returncode == 0, done.stderr
    async with Database(database_url) as db:
        stored = await db.lesson(lesson["id"])
    assert stored is not None and stored.title == lesson["title"]
    session_id = await new_session(gateways[1].url, unique("tea"), lesson["id"])
    headers = {"Authorization": f"Bearer {user_token(unique('x'))}"}
    async with httpx.AsyncClient(base_url=gateways[1].url, headers=headers) as http:
        listed = {x["id"] for x in (await http.get("/v1/lessons")).json()}
        assert lesson["id"] in listed
        assert (await http.get(f"/v1/sessions/{session_id}")).json()["lesson_id"] == lesson["id"]
    # Re-imported with a change: the running gateway serves the new version at once.
    lesson["title"] = "Circles, revised"
    good.write_text(json.dumps(lesson))
    assert run_cli(gateway_settings_env, "lessons", "import", str(good)).returncode == 0
    async with httpx.AsyncClient(base_url=gateways[1].url, headers=headers) as http:
        revised = (await http.get(f"/v1/lessons/{lesson['id']}")).json()
    assert revised["title"] == "Circles, revised"
    lesson["steps"][0]["tolerance_px"] = -1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(lesson))
    refused = run_cli(gateway_settings_env, "lessons", "import", str(bad))
    assert refused.returncode == 2 and "tolerance_px" in refused.stderr


@ray.remote(num_cpus=1)
def hold_a_cpu(redis_url: str, started_key: str, release_key: str) -> None:
    """Keep one of Ray's CPUs taken until the test releases it (through Redis)."""
    client = redis.Redis.from_url(redis_url)
    client.rpush(started_key, 1)
    client.blpop([release_key], timeout=120)


async def test_a_completion_being_scored_when_the_actor_dies_is_scored_after_it_restarts(
    gateways: list[GatewayProcess], redis_url: str, ray_address: str
) -> None:
    gw = gateways[0]
    student, teacher = unique("stu"), unique("tea")
    session_id = await new_session(gw.url, teacher)
    s = await connect(gw.ws_url, gw.url, student, session_id)
    held, release = unique("held"), unique("release")
    store = redis.Redis.from_url(redis_url)
    cpus = int(ray.cluster_resources()["CPU"])  # type: ignore[no-untyped-call]
    # Every CPU taken: the scoring task waits in Ray's queue while the actor is killed.
    blockers = [hold_a_cpu.remote(redis_url, held, release) for _ in range(cpus)]
    try:
        await s.wait_confirmed(await s.draw_stroke(straight(150, 650, 300)))
        await eventually(lambda: store.llen(held) == cpus, timeout_s=30)
        done = await s.step_complete("s1")
        await eventually(lambda: store.hlen(scoring_key(session_id)) == 1, timeout_s=30)
        actor = session_actor(session_id)
        old_pid = await actor.pid.remote()
        os.kill(old_pid, signal.SIGKILL)
        while await actor.pid.remote() == old_pid:
            pass  # each call waits for the restarted actor
        store.rpush(release, *[1] * cpus)
        await s.wait_confirmed(done, timeout_s=60)
        await s.wait_for(lambda: s.step_id == "s2", timeout_s=30)
        scores = [x for x in s.scores if x["user_id"] == student]
        assert len(scores) == 1 and scores[0]["passed"] is True
        await eventually(lambda: store.hlen(scoring_key(session_id)) == 0, timeout_s=10)
    finally:
        store.rpush(release, *[1] * cpus)
        ray.get(blockers)
        await s.close()
