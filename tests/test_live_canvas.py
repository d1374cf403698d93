"""The live shared canvas end to end: two gateway processes, real Ray, Redis, Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Map

from tests.helpers import (
    comparable,
    connect,
    eventually,
    line,
    new_session,
    session_actor,
    session_token,
    teacher_and_student,
    unique,
    user_token,
)
from tests.servers import GatewayProcess


@pytest.fixture
def gw(gateways: list[GatewayProcess]) -> tuple[GatewayProcess, GatewayProcess]:
    return gateways[0], gateways[1]


async def test_two_gateways_deliver_identical_sequences(gw: Any) -> None:
    a_gw, b_gw = gw
    async with teacher_and_student(a_gw, b_gw) as (_, a, b):
        strokes = []
        for i in range(5):
            strokes.append(await a.draw_stroke(line(100, 100 + i * 10)))
            strokes.append(await b.draw_stroke(line(300, 100 + i * 10)))
        a_undo = await a.undo(strokes[0])
        b_undo = await b.undo(strokes[1])
        # The two undos go through different gateways: either may get the later seq.
        last = max(await a.wait_confirmed(a_undo), await b.wait_confirmed(b_undo))
        await a.wait_seq(last)
        await b.wait_seq(last)
        tail = [e for e in a.events if e["seq"] > (b.snapshot or {"seq": 0})["seq"]]
        assert [json.dumps(e, sort_keys=True) for e in tail] == [
            json.dumps(e, sort_keys=True) for e in b.events if e["seq"] in {t["seq"] for t in tail}
        ]
        assert comparable(a.strokes) == comparable(b.strokes)
        assert a.strokes[strokes[0]]["deleted"] and b.strokes[strokes[1]]["deleted"]
        seqs = [e["seq"] for e in a.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_late_joiner_snapshot_equals_what_others_hold(gw: Any) -> None:
    a_gw, b_gw = gw
    teacher = unique("tea")
    session_id = await new_session(a_gw.url, teacher)
    a = await connect(a_gw.ws_url, a_gw.url, teacher, session_id, "teacher")
    try:
        ids = [await a.draw_stroke(line(50, 20 + i * 5)) for i in range(8)]
        await a.undo(ids[2])
        await a.layer_set("ink", opacity=0.5)
        await a.wait_confirmed(await a.step_change("s2"))
        late = await connect(b_gw.ws_url, b_gw.url, unique("late"), session_id, "viewer")
        try:
            assert late.snapshot is not None and late.welcome is not None
            assert late.welcome["resume"] == "snapshot"
            await eventually(lambda: late.last_seq == a.last_seq)
            assert comparable(late.strokes) == comparable(a.strokes)
            assert late.layers == a.layers == {"ink": {"opacity": 0.5}}
            assert late.step_id == a.step_id == "s2"
            assert late.snapshot["payload"]["lesson"]["id"] == "circles-101"
        finally:
            await late.close()
    finally:
        await a.close()


async def test_resume_with_last_seq_gets_exactly_what_was_missed(gw: Any) -> None:
    a_gw, b_gw = gw
    teacher, student = unique("tea"), unique("stu")
    session_id = await new_session(a_gw.url, teacher)
    a = await connect(a_gw.ws_url, a_gw.url, teacher, session_id, "teacher")
    b = await connect(b_gw.ws_url, b_gw.url, student, session_id)
    try:
        await a.wait_confirmed(await a.draw_stroke(line(10, 10)))
        await b.wait_seq(a.last_seq or 0)
        seen_before = b.last_seq
        await b.close()
        missed = [await a.draw_stroke(line(10, 50 + i * 5)) for i in range(4)]
        await a.wait_confirmed(missed[-1])
        token = b.token
        from inkstep.client import InkstepClient

        again = InkstepClient(a_gw.ws_url, token, last_seq=seen_before)
        await again.start()
        try:
            assert again.welcome is not None and again.welcome["resume"] == "tail"
            await again.wait_seq(a.last_seq or 0)
            got = [e["seq"] for e in again.events]
            expected = [e["seq"] for e in a.events if e["seq"] > (seen_before or 0)]
            assert got[: len(expected)] == expected
            assert {e["payload"].get("stroke_id") for e in again.events} >= set(missed)
        finally:
            await again.close()
    finally:
        await a.close()


async def test_duplicate_op_is_acked_and_not_broadcast_again(gw: Any) -> None:
    a_gw, b_gw = gw
    async with teacher_and_student(a_gw, b_gw) as (_, a, b):
        op = {"type": "stroke_append", "client_op_id": "dup-1", "step_id": "s1",
              "payload": {"stroke_id": "dup-1", "layer": "ink", "points": line(5, 5),
                          "style": {"color": "#000000", "width": 2, "tool": "pen"},
                          "final": True}}  # fmt: skip
        await b.send_raw(json.dumps(op))
        seq = await b.wait_confirmed("dup-1")
        await b.send_raw(json.dumps(op))
        await b.wait_for(lambda: any(x["client_op_id"] == "dup-1" for x in b.acks))
        assert b.acks[-1] == {"type": "ack", "client_op_id": "dup-1", "seq": seq, "duplicate": True}
        marker = await a.wait_confirmed(await a.draw_stroke(line(5, 80)))
        await b.wait_seq(marker)
        assert [e["seq"] for e in b.events if e.get("client_op_id") == "dup-1"] == [seq]
        assert [e["seq"] for e in a.events if e.get("client_op_id") == "dup-1"] == [seq]


async def test_roles_are_enforced_and_refusals_change_nothing(gw: Any) -> None:
    a_gw, b_gw = gw
    teacher, ann, bob, vic = unique("tea"), unique("ann"), unique("bob"), unique("vic")
    session_id = await new_session(a_gw.url, teacher)
    a = await connect(a_gw.ws_url, a_gw.url, ann, session_id)
    b = await connect(b_gw.ws_url, b_gw.url, bob, session_id)
    v = await connect(b_gw.ws_url, b_gw.url, vic, session_id, "viewer")
    try:
        target = await a.draw_stroke(line(10, 10))
        await b.wait_for(lambda: target in b.strokes)
        before = comparable(b.strokes)
        op_id = await v.draw_stroke(line(30, 30))
        await v.wait_for(lambda: any(x.get("client_op_id") == op_id for x in v.errors))
        assert v.errors[-1]["code"] == "forbidden"
        undo_id = await b.undo(target)
        await b.wait_for(lambda: any(x.get("client_op_id") == undo_id for x in b.errors))
        assert b.errors[-1]["code"] == "forbidden"
        step_id = await b.step_change("s2")
        await b.wait_for(lambda: any(x.get("client_op_id") == step_id for x in b.errors))
        marker = await a.wait_confirmed(await a.draw_stroke(line(10, 200)))
        await b.wait_seq(marker)
        assert {k: v for k, v in comparable(b.strokes).items() if k in before} == before
        assert b.step_id == "s1"
    finally:
        for client in (a, b, v):
            await client.close()


BAD_FRAMES = {
    "not json": ("{oops", "invalid"),
    "not an object": ("[1, 2]", "invalid"),
    "unknown type": ('{"type": "explode", "client_op_id": "x1"}', "invalid"),
    "unknown field": (json.dumps({"type": "undo", "client_op_id": "x2",
                                  "payload": {"target": "t"}, "extra": 1}), "invalid"),
    "nan": ('{"type": "stroke_append", "client_op_id": "x3", "step_id": "s1", "payload": '
            '{"stroke_id": "x3", "layer": "ink", "points": [[NaN, 1, 0.5, 0]], '
            '"style": {"color": "#000000", "width": 2, "tool": "pen"}, "final": true}}',
            "invalid"),
    "bad op id": (json.dumps({"type": "undo", "client_op_id": "has space",
                              "payload": {"target": "t"}}), "invalid"),
    "too many points": (json.dumps({"type": "stroke_append", "client_op_id": "x4",
                                    "step_id": "s1", "payload": {
                                        "stroke_id": "x4", "layer": "ink",
                                        "points": [[1, 1, 0.5, 0]] * 513,
                                        "style": {"color": "#000000", "width": 2,
                                                  "tool": "pen"}, "final": True}}),
                        "too_large"),
    "outside canvas": (json.dumps({"type": "stroke_append", "client_op_id": "x5",
                                   "step_id": "s1", "payload": {
                                       "stroke_id": "x5", "layer": "ink",
                                       "points": [[1e7, 1, 0.5, 0]],
                                       "style": {"color": "#000000", "width": 2,
                                                 "tool": "pen"}, "final": True}}), "invalid"),
    "unknown step": (json.dumps({"type": "step_complete", "client_op_id": "x6",
                                 "step_id": "nope"}), "invalid"),
}  # fmt: skip


async def test_malformed_frames_get_errors_and_change_nothing(gw: Any) -> None:
    a_gw, _ = gw
    user = unique("ann")
    session_id = await new_session(a_gw.url, user)
    a = await connect(a_gw.ws_url, a_gw.url, user, session_id, "teacher")
    try:
        start_seq = a.last_seq
        for text, code in BAD_FRAMES.values():
            count = len(a.errors)
            await a.send_raw(text)
            await a.wait_for(lambda count=count: len(a.errors) > count)  # type: ignore[misc]
            assert a.errors[-1]["code"] == code, (text[:60], a.errors[-1])
        marker = await a.wait_confirmed(await a.draw_stroke(line(1, 1)))
        produced = [e["type"] for e in a.events if (start_seq or 0) < e["seq"] < marker]
        assert set(produced) <= {"participant"}
        assert len(a.strokes) == 1
        await a.send_raw("x" * (70 * 1024))
        await eventually(lambda: 1009 in a.close_codes)
    finally:
        await a.close()


async def test_hello_failures_close_with_protocol_codes(gw: Any) -> None:
    a_gw, _ = gw
    async with websockets.connect(a_gw.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": "garbage", "last_seq": None}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with websockets.connect(a_gw.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping", "t": 1}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_rest_routes(gw: Any) -> None:
    a_gw, _ = gw
    user = unique("ann")
    headers = {"Authorization": f"Bearer {user_token(user, plan='free')}"}
    async with httpx.AsyncClient(base_url=a_gw.url, headers=headers) as http:
        lessons = (await http.get("/v1/lessons")).json()
        assert any(lesson["id"] == "circles-101" for lesson in lessons)
        assert "reference" in (await http.get("/v1/lessons/circles-101")).json()["steps"][0]
        assert (await http.get("/v1/lessons")).status_code == 200
        assert (await httpx.AsyncClient(base_url=a_gw.url).get("/v1/lessons")).status_code == 401
        pro = [x for x in lessons if x["required_plan"] == "pro"]
        if pro:
            denied = await http.post("/v1/sessions", json={"lesson_id": pro[0]["id"]})
            assert denied.status_code == 403 and "pro" in denied.json()["error"]["message"]
        created = await http.post("/v1/sessions", json={"lesson_id": "circles-101"})
        assert created.status_code == 201
        session_id = created.json()["session_id"]
        other = {"Authorization": f"Bearer {user_token(unique('bob'), plan='free')}"}
        teach = await http.post(f"/v1/sessions/{session_id}/join", json={"role": "teacher"},
                                headers=other)  # fmt: skip
        assert teach.status_code == 403
        assert (
            await http.post("/v1/sessions/nope/join", json={"role": "student"})
        ).status_code == 404
        assert (await http.post("/v1/sessions", json={"lesson_id": "x", "y": 1})).status_code == 422
        as_form = {"Content-Type": "application/x-www-form-urlencoded"}
        form = await http.post("/v1/sessions", content=b'{"lesson_id": "circles-101"}',
                               headers=as_form)  # fmt: skip
        assert form.status_code == 422
        assert "Content-Type: application/json" in form.json()["error"]["message"]
        summary = (await http.get(f"/v1/sessions/{session_id}")).json()
        assert summary["lesson_id"] == "circles-101" and summary["last_seq"] == 0
        assert (await http.get("/healthz")).json()["status"] == "ok"
        assert "inkstep_ws_connections" in (await http.get("/metrics")).text


async def test_replay_and_yjs_doc_match_the_session(gw: Any) -> None:
    a_gw, _ = gw
    user = unique("ann")
    session_id = await new_session(a_gw.url, user)
    a = await connect(a_gw.ws_url, a_gw.url, user, session_id, "teacher")
    try:
        ids = [await a.draw_stroke(line(20, 20 + i * 10)) for i in range(3)]
        await a.wait_confirmed(await a.undo(ids[0]))
    finally:
        await a.close()
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=a_gw.url, headers=headers) as http:
        replay = (await http.get(f"/v1/sessions/{session_id}/replay")).text.splitlines()
        events = [json.loads(line) for line in replay]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["client_op_id"] for e in events if e["type"] == "stroke_append"] == ids
        update = (await http.get(f"/v1/sessions/{session_id}/doc")).content
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    strokes = doc.get("strokes", type=Map).to_py()
    assert set(strokes) == set(ids)
    assert strokes[ids[0]]["deleted"] is True and strokes[ids[1]]["deleted"] is False


async def test_presence_is_relayed_across_gateways(gw: Any) -> None:
    a_gw, b_gw = gw
    async with teacher_and_student(a_gw, b_gw) as (_, a, b):
        ann = a.user_id
        await a.set_presence((120.0, 80.0), tool="pen")
        await b.wait_for(lambda: b.presence.get(ann, {}).get("cursor") == [120.0, 80.0])
        assert ann not in a.presence


async def test_kill_9_of_the_session_actor_loses_no_confirmed_event(
    gw: Any, ray_address: str
) -> None:
    a_gw, b_gw = gw
    user, watcher = unique("ann"), unique("bob")
    session_id = await new_session(a_gw.url, user)
    a = await connect(a_gw.ws_url, a_gw.url, user, session_id, "teacher")
    b = await connect(b_gw.ws_url, b_gw.url, watcher, session_id)
    try:
        actor = session_actor(session_id)
        sent: list[str] = []

        async def draw(count: int) -> None:
            for i in range(count):
                sent.append(await a.draw_stroke(line(10, 10 + (i % 50) * 10, n=5)))
                await asyncio.sleep(0.01)

        drawing = asyncio.create_task(draw(120))
        await eventually(lambda: len(sent) > 30)
        os.kill(await actor.pid.remote(), signal.SIGKILL)
        await drawing
        await a.wait_for(lambda: not a.unconfirmed, timeout_s=60)
        await b.wait_seq(a.last_seq or 0, timeout_s=30)
    finally:
        await a.close()
        await b.close()
    headers = {"Authorization": f"Bearer {user_token(user)}"}
    async with httpx.AsyncClient(base_url=a_gw.url, headers=headers, timeout=30) as http:
        replay = (await http.get(f"/v1/sessions/{session_id}/replay")).text.splitlines()
    events = [json.loads(line) for line in replay]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    stroke_ops = [e["client_op_id"] for e in events if e["type"] == "stroke_append"]
    assert sorted(stroke_ops) == sorted(sent)  # every confirmed op, exactly once
    assert set(a.confirmed) >= set(sent)


async def test_live_stroke_points_are_batched_into_one_stroke(gw: Any) -> None:
    a_gw, b_gw = gw
    async with teacher_and_student(a_gw, b_gw) as (_, a, b):
        stroke_id = a.begin_stroke()
        for i in range(30):  # a pointer moving for ~0.5 s at 60 Hz
            a.add_point(stroke_id, 100 + i, 200, 0.5)
            await asyncio.sleep(1 / 60)
        await a.end_stroke(stroke_id)
        await a.wait_for(lambda: not a.unconfirmed)
        await b.wait_for(lambda: b.strokes.get(stroke_id, {}).get("final") is True)
        batches = [e for e in b.events if e["payload"].get("stroke_id") == stroke_id]
        assert 2 <= len(batches) < 30  # batched, not one frame per point
        assert batches[0]["client_op_id"] == stroke_id
        assert [p[0] for p in b.strokes[stroke_id]["points"]] == [100 + i for i in range(30)]


async def test_pong_tells_the_newest_seq_queued_before_it(gw: Any) -> None:
    a_gw, _ = gw
    ann = unique("ann")
    session_id = await new_session(a_gw.url, ann)
    a = await connect(a_gw.ws_url, a_gw.url, ann, session_id, "teacher")
    try:
        seq = await a.wait_confirmed(await a.draw_stroke(line(10, 10)))
        async with websockets.connect(a_gw.ws_url) as raw:
            token = await session_token(a_gw.url, unique("bob"), session_id, "viewer")
            await raw.send(json.dumps({"type": "hello", "token": token, "last_seq": seq}))
            await raw.send(json.dumps({"type": "ping", "t": 5}))
            frames = [json.loads(await raw.recv()) for _ in range(2)]
            while frames[-1]["type"] != "pong":
                frames.append(json.loads(await raw.recv()))
        received = max([f["seq"] for f in frames if "seq" in f] + [seq])
        assert frames[-1] == {"type": "pong", "t": 5, "last_seq": received}
    finally:
        await a.close()


async def test_clients_joining_at_the_same_moment_all_receive_events(gw: Any) -> None:
    a_gw, _ = gw
    teacher = unique("tea")
    session_id = await new_session(a_gw.url, teacher)
    users = [unique("stu") for _ in range(6)]
    clients = await asyncio.gather(
        *(connect(a_gw.ws_url, a_gw.url, user, session_id) for user in users)
    )
    try:
        seq = await clients[0].wait_confirmed(await clients[0].draw_stroke(line(10, 10)))
        for client in clients:
            await client.wait_seq(seq)
    finally:
        for client in clients:
            await client.close()
