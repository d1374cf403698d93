"""Chaos: clients draw while session actors are killed and a gateway restarts; nothing lost.

Two gateways; `--sessions` sessions of `--clients` clients, each client given both gateways'
URLs (it reconnects to the other one and resumes by last_seq). While they draw, the session
actors are killed (kill -9) every `--kill-every` seconds round-robin, and halfway through the
second gateway is killed (SIGKILL) and started again on the same port. Then, once no client
has an unconfirmed op, every confirmed op (client_op_id and its seq) is checked against the
session's replay and a fresh snapshot: lost, duplicated, seq gaps. Exit code 1 on any.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from inkstep.bench.cluster import (
    BenchCluster,
    add_cluster_arguments,
    close_clients,
    draw_until,
    open_client,
    progress,
    quiet_logs,
    wait_all_confirmed,
)
from inkstep.bench.harness import print_json
from inkstep.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from inkstep.client import InkstepClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench chaos`."""
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of drawing")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4, help="clients per session")
    parser.add_argument("--rate", type=float, default=4.0, help="strokes per second per client")
    parser.add_argument("--points", type=int, default=8, help="points per stroke")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument(
        "--settle", type=float, default=120.0,
        help="seconds to wait for every op to be confirmed after the drawing stops",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    add_cluster_arguments(parser)


# ---- checking confirmed ops against the replay and a snapshot --------------------------


@dataclass
class Audit:
    """What a session's replay and snapshot say about its confirmed ops."""

    confirmed: int = 0
    lost: int = 0
    duplicated: int = 0
    seq_mismatch: int = 0
    seq_gaps: int = 0
    repeated_seqs: int = 0
    events: int = 0
    lost_in_replay: int = 0
    lost_in_snapshot: int = 0
    duplicated_in_replay: int = 0
    duplicated_in_snapshot: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: Audit) -> None:
        """Sum another session's counts into this one."""
        for name, value in asdict(other).items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        self.examples = (self.examples + other.examples)[:10]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.seq_mismatch or self.seq_gaps
                    or self.repeated_seqs)  # fmt: skip


@dataclass
class Confirmed:
    """One confirmed stroke: who sent it, the seq it was confirmed with, its points."""

    user_id: str
    seq: int
    points: int


def confirmed_strokes(
    clients: list[InkstepClient], sent: list[dict[str, int]]
) -> dict[str, Confirmed]:
    """Every confirmed one-batch stroke of a session's clients, by client_op_id."""
    found: dict[str, Confirmed] = {}
    for client, strokes in zip(clients, sent, strict=True):
        assert client.user_id is not None
        for op_id, seq in client.confirmed.items():
            if op_id in strokes:
                found[op_id] = Confirmed(client.user_id, seq, strokes[op_id])
    return found


def audit_session(
    events: list[dict[str, Any]], snapshot: dict[str, dict[str, Any]],
    confirmed: dict[str, Confirmed],
) -> Audit:  # fmt: skip
    """Each confirmed op exactly once in the replay (at its seq) and in the snapshot."""
    audit = Audit(confirmed=len(confirmed), events=len(events))
    seqs = [event["seq"] for event in events]
    audit.repeated_seqs = len(seqs) - len(set(seqs))
    audit.seq_gaps = (max(seqs) - len(set(seqs))) if seqs else 0
    if seqs != sorted(seqs):
        audit.examples.append("replay not in seq order")
    ops = Counter((e["author"], e["client_op_id"]) for e in events if e.get("client_op_id"))
    seq_of = {(e["author"], e["client_op_id"]): e["seq"] for e in events if e.get("client_op_id")}
    audit.duplicated_in_replay = sum(1 for count in ops.values() if count > 1)
    lost, duplicated = set(), {key[1] for key, count in ops.items() if count > 1}
    for op_id, op in confirmed.items():
        key = (op.user_id, op_id)
        if ops[key] == 0:
            audit.lost_in_replay += 1
            lost.add(op_id)
            audit.examples.append(f"{op_id} (seq {op.seq}) missing from the replay")
        elif seq_of[key] != op.seq:
            audit.seq_mismatch += 1
            audit.examples.append(f"{op_id} confirmed as {op.seq}, replayed at {seq_of[key]}")
        stroke = snapshot.get(op_id)
        if stroke is None or len(stroke["points"]) < op.points:
            audit.lost_in_snapshot += 1
            lost.add(op_id)
            audit.examples.append(f"{op_id} (seq {op.seq}) missing from the snapshot")
        elif len(stroke["points"]) > op.points:
            audit.duplicated_in_snapshot += 1
            duplicated.add(op_id)
            audit.examples.append(f"{op_id} has {len(stroke['points'])} points, sent {op.points}")
    audit.lost, audit.duplicated = len(lost), len(duplicated)
    audit.examples = audit.examples[:10]
    return audit


async def fresh_snapshot(
    cluster: BenchCluster, user: str, session_id: str
) -> tuple[int, dict[str, dict[str, Any]]]:
    """A new viewer's snapshot of the session: its seq and strokes."""
    viewer = await open_client(cluster, [cluster.gateways[0].ws_url], user, session_id, "viewer")
    try:
        assert viewer.snapshot is not None, "a first join resumes from a snapshot"
        seq: int = viewer.snapshot["seq"]
        strokes = {s["stroke_id"]: s for s in viewer.snapshot["payload"]["strokes"]}
        return seq, strokes
    finally:
        await viewer.close()


async def audit_against_server(
    cluster: BenchCluster, teacher: str, session_id: str, confirmed: dict[str, Confirmed]
) -> Audit:
    """Fetch the replay, then a fresh snapshot, and audit the confirmed ops against both."""
    events = await cluster.replay(teacher, session_id)
    snapshot_seq, strokes = await fresh_snapshot(cluster, teacher, session_id)
    audit = audit_session(events, strokes, confirmed)
    if events and snapshot_seq < events[-1]["seq"]:
        audit.examples.append(f"snapshot at seq {snapshot_seq} < replay end {events[-1]['seq']}")
        audit.seq_gaps += events[-1]["seq"] - snapshot_seq
    return audit


# ---- the chaos ---------------------------------------------------------------------------


@dataclass
class Room:
    """One session and its drawing clients."""

    session_id: str
    teacher: str
    clients: list[InkstepClient]
    sent: list[dict[str, int]]


async def open_rooms(
    cluster: BenchCluster, args: argparse.Namespace, opened: list[InkstepClient]
) -> list[Room]:
    """Create the sessions and connect their clients, spread over both gateways; every
    client goes into `opened` as soon as it is, so a failure part way can close them."""
    urls = [gateway.ws_url for gateway in cluster.gateways]

    async def room(s: int) -> Room:
        teacher = f"chaos-{s}-teacher"
        session_id = await cluster.new_session(teacher)
        clients: list[InkstepClient] = []
        for c in range(args.clients):
            user, role = (teacher, "teacher") if c == 0 else (f"chaos-{s}-student-{c}", "student")
            first = (s * args.clients + c) % len(urls)
            rotated = urls[first:] + urls[:first]
            clients.append(await open_client(cluster, rotated, user, session_id, role))
            opened.append(clients[-1])
        return Room(session_id, teacher, clients, [{} for _ in clients])

    return list(await asyncio.gather(*(room(s) for s in range(args.sessions))))


async def kill_actors(
    cluster: BenchCluster, session_ids: list[str], every_s: float, stop: asyncio.Event
) -> list[dict[str, Any]]:
    """kill -9 one session actor every `every_s`, round-robin, until `stop`."""
    kills: list[dict[str, Any]] = []
    started = time.monotonic()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
            return kills
        session_id = session_ids[len(kills) % len(session_ids)]
        try:
            pid = await asyncio.wait_for(cluster.kill_actor(session_id), 10)
        except (TimeoutError, ProcessLookupError):
            pid = None
        at_s = round(time.monotonic() - started, 1)
        kills.append({"at_s": at_s, "session_id": session_id, "pid": pid})
        progress(f"killed the actor of session {session_id[:8]} (pid {pid}) at {at_s} s")


async def restart_gateway(gateway: GatewayProcess, after_s: float) -> dict[str, float]:
    """SIGKILL the gateway after `after_s`, then start it again on the same port."""
    await asyncio.sleep(after_s)
    killed_at = time.monotonic()
    gateway.stop(signal.SIGKILL)
    progress(f"killed gateway {gateway.url}; starting it again")
    await asyncio.to_thread(gateway.start)
    down_s = time.monotonic() - killed_at
    progress(f"gateway {gateway.url} back after {down_s:.1f} s")
    return {"killed_at_s": after_s, "down_s": round(down_s, 1)}


async def draw_through_faults(
    cluster: BenchCluster, rooms: list[Room], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every client draws for `--duration` while actors are killed and a gateway restarts."""
    stop = asyncio.Event()
    rng = random.Random(args.seed)
    drawing = [
        asyncio.create_task(draw_until(client, stop, 1 / args.rate, args.points,
                                       random.Random(rng.random()), sent))
        for room in rooms for client, sent in zip(room.clients, room.sent, strict=True)
    ]  # fmt: skip
    killing = asyncio.create_task(
        kill_actors(cluster, [room.session_id for room in rooms], args.kill_every, stop)
    )
    restart = asyncio.create_task(restart_gateway(cluster.gateways[-1], args.duration / 2))
    await asyncio.sleep(args.duration)
    stop.set()
    await asyncio.gather(*drawing)
    return await killing, await restart


async def audit_rooms(cluster: BenchCluster, rooms: list[Room]) -> Audit:
    """Audit every session's confirmed ops against its replay and a fresh snapshot."""
    audit = Audit()
    for room in rooms:
        confirmed = confirmed_strokes(room.clients, room.sent)
        audit.add(await audit_against_server(cluster, room.teacher, room.session_id, confirmed))
    return audit


async def chaos(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    """Draw under kills and a gateway restart, settle, then audit every session."""
    all_clients: list[InkstepClient] = []
    try:
        rooms = await open_rooms(cluster, args, all_clients)
        progress(f"{len(all_clients)} clients in {len(rooms)} sessions drawing "
                 f"for {args.duration} s")  # fmt: skip
        kills, restarted = await draw_through_faults(cluster, rooms, args)
        progress("drawing stopped; waiting for every op to be confirmed")
        unconfirmed = await wait_all_confirmed(all_clients, args.settle)
        audit = await audit_rooms(cluster, rooms)
    finally:
        await close_clients(all_clients)
    return summarize(args, rooms, audit, kills, restarted, unconfirmed)


def summarize(
    args: argparse.Namespace, rooms: list[Room], audit: Audit, kills: list[dict[str, Any]],
    restarted: dict[str, float], unconfirmed: int,
) -> dict[str, Any]:  # fmt: skip
    """The figures, as a JSON-ready dict."""
    clients = [client for room in rooms for client in room.clients]
    errors = Counter(str(e.get("code")) for c in clients for e in c.errors)
    return {
        "bench": "chaos",
        "duration_s": args.duration,
        "sessions": len(rooms),
        "clients": len(clients),
        "sent": sum(len(sent) for room in rooms for sent in room.sent),
        **{k: v for k, v in asdict(audit).items() if k != "examples"},
        "unconfirmed_at_end": unconfirmed,
        "actor_kills": len([k for k in kills if k["pid"] is not None]),
        "gateway_restart": restarted,
        "reconnects": sum(max(0, c.connections - 1) for c in clients),
        "errors": dict(errors),
        "examples": audit.examples,
        "ok": audit.ok and unconfirmed == 0,
    }


def print_result(result: dict[str, Any]) -> None:
    """The figures as text."""
    gw = result["gateway_restart"]
    print(f"chaos: {result['duration_s']:g} s, {result['sessions']} sessions x "
          f"{result['clients'] // max(result['sessions'], 1)} clients, 2 gateways "
          f"(one SIGKILLed at {gw['killed_at_s']:g} s, back after {gw['down_s']:g} s), "
          f"{result['actor_kills']} session actors killed (kill -9)")  # fmt: skip
    print(f"  sent {result['sent']}  confirmed {result['confirmed']}  "
          f"events in replays {result['events']}  reconnects {result['reconnects']}")  # fmt: skip
    print(f"  lost {result['lost']}  duplicated {result['duplicated']}  "
          f"seq gaps {result['seq_gaps']}  repeated seqs {result['repeated_seqs']}  "
          f"seq mismatches {result['seq_mismatch']}  "
          f"unconfirmed at end {result['unconfirmed_at_end']}")  # fmt: skip
    if result["errors"]:
        print(f"  errors received: {result['errors']}")
    for example in result["examples"]:
        print(f"  ! {example}")
    print("  OK: nothing lost or duplicated" if result["ok"] else "  FAILED")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chaos bench on its own cluster; answers the figures."""
    quiet_logs()
    with BenchCluster(args, gateways=2, env={}) as cluster:
        return asyncio.run(chaos(cluster, args))


def run(args: argparse.Namespace) -> int:
    """`inkstep bench chaos`: exit code 1 when anything confirmed was lost or duplicated."""
    result = measure(args)
    print_json(result) if args.json else print_result(result)
    return 0 if result["ok"] else 1
