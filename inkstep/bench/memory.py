"""Memory: RSS/USS per session actor, checkpoint bytes per 1k strokes, processes left idle.

`--sessions` sessions with `--clients` clients each draw for `--draw-s` seconds; then the RSS
and USS (psutil memory_full_info) of each session actor's process are read. One more session
gets `--strokes` strokes of `--points` points and a checkpoint; its size per 1k strokes is
reported. Finally every client leaves and, with INKSTEP_IDLE_EXIT_S=`--idle-exit-s`, the bench
counts the session actors and their processes left after the sessions went idle (goal: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

import psutil

from inkstep.bench.cluster import (
    BenchCluster,
    add_cluster_arguments,
    close_clients,
    draw_many,
    draw_until,
    load_average,
    open_client,
    poll_until,
    progress,
    quiet_logs,
)
from inkstep.bench.harness import print_json
from inkstep.store import archive
from inkstep.store.blob import open_blob_store

if TYPE_CHECKING:
    from inkstep.client import InkstepClient

MIB = 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench memory`."""
    parser.add_argument("--sessions", type=int, default=5, help="sessions drawing at once")
    parser.add_argument("--clients", type=int, default=2, help="clients per session")
    parser.add_argument("--draw-s", type=float, default=10.0, help="seconds of drawing")
    parser.add_argument("--rate", type=float, default=4.0, help="strokes per second per client")
    parser.add_argument("--strokes", type=int, default=2000, help="strokes in the checkpoint")
    parser.add_argument("--points", type=int, default=20, help="points per stroke")
    parser.add_argument("--idle-exit-s", type=float, default=3.0)
    parser.add_argument("--idle-wait", type=float, default=60.0, help="seconds to wait for 0")
    parser.add_argument("--seed", type=int, default=1)
    add_cluster_arguments(parser)


def actor_memory(pid: int) -> dict[str, float]:
    """RSS and USS of one process, in MiB."""
    info = psutil.Process(pid).memory_full_info()
    return {"pid": pid, "rss_mib": round(info.rss / MIB, 1), "uss_mib": round(info.uss / MIB, 1)}


def running(pids: set[int]) -> list[int]:
    """Which of `pids` still run (zombies count as gone)."""
    alive: list[int] = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


async def drawing_sessions(
    cluster: BenchCluster, args: argparse.Namespace, clients: list[InkstepClient]
) -> list[dict[str, Any]]:
    """N sessions drawing for a while; the memory of each session's actor at the end."""
    rng = random.Random(args.seed)
    session_ids: list[str] = []
    for s in range(args.sessions):
        teacher = f"memory-{s}-teacher"
        session_id = await cluster.new_session(teacher)
        session_ids.append(session_id)
        for c in range(args.clients):
            user, role = (teacher, "teacher") if c == 0 else (f"memory-{s}-{c}", "student")
            clients.append(await open_client(cluster, [cluster.gateways[0].ws_url], user,
                                             session_id, role))  # fmt: skip
    progress(f"{len(clients)} clients in {args.sessions} sessions drawing for {args.draw_s} s")
    stop = asyncio.Event()
    sent: dict[str, int] = {}
    tasks = [
        asyncio.create_task(draw_until(client, stop, 1 / args.rate, args.points,
                                       random.Random(rng.random()), sent))
        for client in clients
    ]  # fmt: skip
    await asyncio.sleep(args.draw_s)
    rows = [await memory_of(cluster, session_id) for session_id in session_ids]
    stop.set()
    await asyncio.gather(*tasks)
    return rows


async def memory_of(cluster: BenchCluster, session_id: str) -> dict[str, Any]:
    """The session's actor process memory, with its session and last seq."""
    pid = await cluster.actor_pid(session_id)
    assert pid is not None, f"session {session_id} has no live actor"
    return {"session_id": session_id, **actor_memory(pid)}


async def checkpoint_size(
    cluster: BenchCluster, args: argparse.Namespace, clients: list[InkstepClient]
) -> dict[str, Any]:
    """Draw `--strokes` strokes in one session, checkpoint it, and read the checkpoint."""
    teacher = "memory-checkpoint"
    session_id = await cluster.new_session(teacher)
    client = await open_client(cluster, [cluster.gateways[0].ws_url], teacher, session_id,
                               "teacher")  # fmt: skip
    clients.append(client)
    started = time.monotonic()
    await draw_many(client, args.strokes, args.points, random.Random(args.seed))
    progress(f"{args.strokes} strokes drawn in {time.monotonic() - started:.1f} s")
    handle = cluster.session_actor(session_id)
    assert handle is not None
    await handle.checkpoint.remote()
    found = archive.latest_checkpoint(open_blob_store(cluster.blob_url), session_id)
    assert found is not None, "the actor wrote no checkpoint"
    seq, data = found
    return {
        "strokes": args.strokes,
        "points_per_stroke": args.points,
        "checkpoint_seq": seq,
        "checkpoint_bytes": len(data),
        "bytes_per_1k_strokes": round(len(data) / args.strokes * 1000),
        "actor": await memory_of(cluster, session_id),
    }


async def idle_exit(
    cluster: BenchCluster, args: argparse.Namespace, clients: list[InkstepClient]
) -> dict[str, Any]:
    """Every client leaves; count the actors and their processes once the sessions idle."""
    names = cluster.live_session_actors()
    found = [await cluster.actor_pid(name.removeprefix("session:")) for name in names]
    pids = {pid for pid in found if pid is not None}
    await close_clients(clients)
    left_at = time.monotonic()
    await poll_until(
        lambda: not (cluster.live_session_actors() or running(pids)), args.idle_wait, 0.25
    )
    return {
        "idle_exit_s": args.idle_exit_s,
        "actors_before": len(names),
        "actors_after": len(cluster.live_session_actors()),
        "actor_processes_after": len(running(pids)),
        "seconds_to_exit": round(time.monotonic() - left_at, 1),
    }


async def memory(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    """The three measurements, in order (idle exit last: it needs every client gone)."""
    clients: list[InkstepClient] = []
    try:
        actors = await drawing_sessions(cluster, args, clients)
        checkpoint = await checkpoint_size(cluster, args, clients)
        idle = await idle_exit(cluster, args, clients)
    finally:
        await close_clients(clients)
    return {
        "bench": "memory",
        "actors": actors,
        "rss_mib_mean": round(statistics.fmean(a["rss_mib"] for a in actors), 1),
        "uss_mib_mean": round(statistics.fmean(a["uss_mib"] for a in actors), 1),
        "checkpoint": checkpoint,
        "idle": idle,
        "load_average": load_average(),
    }


def print_result(result: dict[str, Any]) -> None:
    """The figures as text."""
    print(f"memory per live session actor ({len(result['actors'])} sessions drawing)")
    print("  session    pid      RSS MiB  USS MiB")
    for row in result["actors"]:
        print(f"  {row['session_id'][:8]}  {row['pid']:>7}  {row['rss_mib']:>7}  "
              f"{row['uss_mib']:>7}")  # fmt: skip
    print(f"  mean               {result['rss_mib_mean']:>7}  {result['uss_mib_mean']:>7}")
    ckpt = result["checkpoint"]
    print(f"checkpoint of {ckpt['strokes']} strokes x {ckpt['points_per_stroke']} points "
          f"(seq {ckpt['checkpoint_seq']}): {ckpt['checkpoint_bytes']} bytes = "
          f"{ckpt['bytes_per_1k_strokes']} bytes per 1k strokes; its actor RSS "
          f"{ckpt['actor']['rss_mib']} MiB, USS {ckpt['actor']['uss_mib']} MiB")  # fmt: skip
    idle = result["idle"]
    print(f"after every client left (idle_exit_s {idle['idle_exit_s']:g}): "
          f"{idle['actors_after']} of {idle['actors_before']} session actors alive, "
          f"{idle['actor_processes_after']} actor processes running, after "
          f"{idle['seconds_to_exit']} s (goal 0)")  # fmt: skip
    print(f"load average {result['load_average']}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the memory bench on its own cluster; answers the figures."""
    quiet_logs()
    env = {"INKSTEP_IDLE_EXIT_S": str(args.idle_exit_s)}
    with BenchCluster(args, gateways=1, env=env) as cluster:
        return asyncio.run(memory(cluster, args))


def run(args: argparse.Namespace) -> int:
    """`inkstep bench memory`: exit code 1 when session actor processes outlive idleness."""
    result = measure(args)
    print_json(result) if args.json else print_result(result)
    idle = result["idle"]
    return 0 if idle["actors_after"] == 0 and idle["actor_processes_after"] == 0 else 1
