"""Recovery: time from kill -9 of a session actor to the first op confirmed after it.

One session gets `--events` events of history (sent as fast as they are confirmed; the
actor checkpoints every INKSTEP_CHECKPOINT_EVERY_EVENTS as usual). Then, `--runs` times, a
client that sends a small stroke every `--probe-ms` ms and waits for its confirmation keeps
drawing while the actor's process is killed with SIGKILL; the figure is the time from the
kill to the first confirmation of an op sent after it. Ray restarts the actor and it rebuilds
from its newest checkpoint plus the log after it. At the end the replay and a fresh snapshot
must hold every confirmed op exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inkstep.bench.chaos import Audit, Confirmed, audit_against_server
from inkstep.bench.cluster import (
    BenchCluster,
    add_cluster_arguments,
    draw_many,
    load_average,
    open_client,
    percentile,
    progress,
    quiet_logs,
    stroke_points,
)
from inkstep.bench.harness import print_json
from inkstep.store import archive
from inkstep.store.blob import open_blob_store

if TYPE_CHECKING:
    from inkstep.client import InkstepClient

GOAL_P50_S = 1.5
HISTORY_POINTS = 4
PROBE_POINTS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench recovery`."""
    parser.add_argument("--events", type=int, default=10_000, help="events of history")
    parser.add_argument("--runs", type=int, default=5, help="kills to time")
    parser.add_argument("--probe-ms", type=float, default=10.0, help="ms between probe ops")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per run")
    parser.add_argument("--seed", type=int, default=1)
    add_cluster_arguments(parser)


@dataclass
class Prober:
    """Sends a small stroke every `interval_s`; remembers what it sent, in order."""

    client: InkstepClient
    interval_s: float
    rng: random.Random
    sent: list[str] = field(default_factory=list)
    points: dict[str, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until `stop`."""
        while not stop.is_set():
            op_id = await self.client.draw_stroke(stroke_points(self.rng, PROBE_POINTS))
            self.sent.append(op_id)
            self.points[op_id] = PROBE_POINTS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def confirmed_since(self, index: int) -> bool:
        """Whether any op sent at or after position `index` is confirmed."""
        confirmed = self.client.confirmed
        return any(op_id in confirmed for op_id in self.sent[index:])


async def wait_restarted(cluster: BenchCluster, session_id: str, old_pid: int) -> float:
    """Seconds until the session's actor answers from a new process."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            pid = await cluster.actor_pid(session_id, timeout_s=5)
            if pid is not None and pid != old_pid:
                return time.monotonic() - started
        await asyncio.sleep(0.01)


async def one_kill(
    cluster: BenchCluster, session_id: str, prober: Prober, timeout_s: float
) -> dict[str, Any]:
    """Kill the actor mid-stream; time its restart and the first confirmation after it."""
    client = prober.client
    await asyncio.sleep(1.0)  # let the previous restart settle: the actor is drawn on again
    steady = len(prober.sent)
    await client.wait_for(lambda: prober.confirmed_since(steady), timeout_s=timeout_s)
    pid = await cluster.actor_pid(session_id)
    assert pid is not None, "the session has a live actor while a client draws"
    checkpoints = archive.checkpoint_seqs(open_blob_store(cluster.blob_url), session_id)
    seq_at_kill, index = client.last_seq, len(prober.sent)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    restarted = asyncio.create_task(wait_restarted(cluster, session_id, pid))
    recovered_s: float | None = None
    try:
        await client.wait_for(lambda: prober.confirmed_since(index), timeout_s=timeout_s)
        recovered_s = time.monotonic() - killed_at
    except TimeoutError:
        pass
    restart_s = await asyncio.wait_for(restarted, timeout_s) if recovered_s else None
    return {
        "pid_killed": pid,
        "seq_at_kill": seq_at_kill,
        "checkpoint_seq": checkpoints[-1] if checkpoints else 0,
        "actor_restarted_s": None if restart_s is None else round(restart_s, 3),
        "recovered_s": None if recovered_s is None else round(recovered_s, 3),
    }


async def recovery(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    """Build the history, time `--runs` kills, then audit the session."""
    rng = random.Random(args.seed)
    teacher = "recovery-teacher"
    session_id = await cluster.new_session(teacher)
    client = await open_client(cluster, [cluster.gateways[0].ws_url], teacher, session_id,
                               "teacher")  # fmt: skip
    prober = Prober(client, args.probe_ms / 1000, random.Random(rng.random()))
    runs: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        history = await draw_many(client, args.events, HISTORY_POINTS, rng)
        progress(f"{client.last_seq} events of history in {time.monotonic() - started:.1f} s")
        stop = asyncio.Event()
        probing = asyncio.create_task(prober.run(stop))
        for number in range(1, args.runs + 1):
            run = {"run": number, **await one_kill(cluster, session_id, prober, args.timeout)}
            progress(f"run {number}: recovered in {run['recovered_s']} s "
                     f"(actor back in {run['actor_restarted_s']} s)")  # fmt: skip
            runs.append(run)
        stop.set()
        await probing
        await client.wait_for(lambda: not client.unconfirmed, timeout_s=args.timeout)
        audit = await audit_against_server(
            cluster, teacher, session_id, confirmed_ops(client, {**history, **prober.points})
        )
    finally:
        await client.close()
    return summarize(args, runs, audit)


def confirmed_ops(client: InkstepClient, points: dict[str, int]) -> dict[str, Confirmed]:
    """The client's confirmed strokes with their seqs and point counts."""
    assert client.user_id is not None
    return {
        op_id: Confirmed(client.user_id, seq, points[op_id])
        for op_id, seq in client.confirmed.items()
        if op_id in points
    }


def summarize(args: argparse.Namespace, runs: list[dict[str, Any]], audit: Audit
              ) -> dict[str, Any]:  # fmt: skip
    """The figures, as a JSON-ready dict."""
    times = [run["recovered_s"] for run in runs if run["recovered_s"] is not None]
    p50 = percentile(times, 50)
    return {
        "bench": "recovery",
        "events": args.events,
        "runs": runs,
        "recovered": len(times) == len(runs),
        "recovery_p50_s": p50 if times else None,
        "recovery_max_s": max(times) if times else None,
        "goal_p50_s": GOAL_P50_S,
        "goal_met": bool(times) and p50 <= GOAL_P50_S,
        "confirmed": audit.confirmed,
        "lost": audit.lost,
        "duplicated": audit.duplicated,
        "seq_gaps": audit.seq_gaps,
        "examples": audit.examples,
        "load_average": load_average(),
    }


def print_result(result: dict[str, Any]) -> None:
    """The figures as text."""
    print(f"recovery after kill -9 of the session actor, {result['events']} events of history, "
          f"{len(result['runs'])} runs (load average {result['load_average']})")  # fmt: skip
    print("  run  seq at kill  checkpoint  actor back s  first confirm s")
    for run in result["runs"]:
        print(f"  {run['run']:>3}  {run['seq_at_kill']:>11}  {run['checkpoint_seq']:>10}  "
              f"{run['actor_restarted_s']!s:>12}  {run['recovered_s']!s:>15}")  # fmt: skip
    print(
        f"  p50 {result['recovery_p50_s']} s  max {result['recovery_max_s']} s  "
        f"(goal p50 <= {result['goal_p50_s']} s: {'met' if result['goal_met'] else 'NOT met'})"
    )
    print(f"  confirmed {result['confirmed']}  lost {result['lost']}  "
          f"duplicated {result['duplicated']}  seq gaps {result['seq_gaps']}")  # fmt: skip
    for example in result["examples"]:
        print(f"  ! {example}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the recovery bench on its own cluster; answers the figures."""
    quiet_logs()
    with BenchCluster(args, gateways=1, env={}) as cluster:
        return asyncio.run(recovery(cluster, args))


def run(args: argparse.Namespace) -> int:
    """`inkstep bench recovery`: exit code 1 when a run never recovered or an op was lost."""
    result = measure(args)
    print_json(result) if args.json else print_result(result)
    ok = result["recovered"] and not (result["lost"] or result["duplicated"] or result["seq_gaps"])
    return 0 if ok else 1
