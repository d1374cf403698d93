"""Fan-out under load: C clients per session drawing HZ batches/s; latency, loss, CPU, RSS.

Every client sends a 20-point `stroke_append` batch `--rate` times a second on absolute
deadlines (a late loop sends at once rather than silently lowering the rate). Latency is send
→ receipt by each *other* client of the session; lost = an op some other client never got
(within `--drain` seconds after the run); out-of-order = a seq that is not the previous + 1.
The clients run in separate processes (whole sessions per process, so send and receive
times share one clock) on uvloop, each a lean WebSocket client (`wire.py`) so that the load
itself costs little; their own CPU is reported so a saturated generator is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from inkstep.bench import harness
from inkstep.bench.harness import Seat, TreeSampler, Usage
from inkstep.bench.wire import WireSocket
from inkstep.embedded import EmbeddedRedis, free_port

POINTS_PER_BATCH = 20
BATCHES_PER_STROKE = 50
KEEPALIVE_S = 5.0
# Each session's first join starts its actor (a process): a few at a time, so a busy machine
# starts them one after another instead of timing them all out together.
JOIN_CONCURRENCY = 4
JOIN_TIMEOUT_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench fanout`."""
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4, help="clients per session")
    parser.add_argument("--rate", type=float, default=20.0, help="batches per second per client")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="seconds to wait for late deliveries before counting them lost",
    )
    parser.add_argument("--url", default=None, help="an already running server (else start one)")
    parser.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="with --url: a pid whose process tree to measure (repeatable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes of its own server (1, as inkstep serve)",
    )
    parser.add_argument(
        "--session-hosts",
        type=int,
        default=0,
        metavar="N",
        help="its own server carries the sessions in N shared host actors (0: an actor each)",
    )
    parser.add_argument(
        "--generators",
        type=int,
        default=0,
        help="load-generator processes (default: one per 20 sessions)",
    )
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument(
        "--concurrent-joins",
        action="store_true",
        help="join a session's clients at once (default: one after another)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the minimal broadcast server under the same load",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="also run a minimal gateway that fans out through a Redis stream (no Ray, no "
        "session actor, no validation) under the same load",
    )
    parser.add_argument(
        "--sequenced",
        action="store_true",
        help="also run that relay with an ordering process between its gateway and the "
        "streams it fans out from (one process numbering every session's ops)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="S",
        help="instead: measure the server's CPU while idle for S seconds",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="with --idle: seconds to let the server settle first",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """`inkstep bench fanout`: measure, then print a table or JSON."""
    harness.quiet_http_logs()
    if args.idle is not None:
        idle = measure_idle(args)
        harness.print_json(idle) if args.json else print_idle(idle)
        return 0
    result = measure(args)
    harness.print_json(result) if args.json else print_result(result)
    return 0


# ---- the load -------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What every run of one invocation carries."""

    sessions: int
    clients: int
    rate_hz: float
    duration_s: float
    drain_s: float
    deflate: bool
    generators: int
    concurrent_joins: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Load:
        generators = args.generators or min(math.ceil(args.sessions / 20), os.cpu_count() or 1)
        return cls(args.sessions, args.clients, args.rate, args.duration, args.drain,
                   args.deflate, max(1, min(generators, args.sessions)),
                   args.concurrent_joins)  # fmt: skip


def stroke_points(client_index: int) -> list[str]:
    """The JSON point lists of one stroke's batches: arcs of a circle inside the 800x600 canvas."""
    radius = 60 + (client_index * 37) % 180
    batches = []
    for batch in range(BATCHES_PER_STROKE):
        points = []
        for i in range(POINTS_PER_BATCH):
            step = batch * POINTS_PER_BATCH + i
            angle = step * 2 * math.pi / (BATCHES_PER_STROKE * POINTS_PER_BATCH)
            x = harness.CANVAS_W / 2 + radius * math.cos(angle)
            y = harness.CANVAS_H / 2 + radius * math.sin(angle)
            points.append([round(x, 1), round(y, 1), 0.5, step * 5])
        batches.append(json.dumps(points, separators=(",", ":")))
    return batches


# ---- bookkeeping inside one generator process -------------------------------------------


@dataclass
class Totals:
    """Counts of one generator process; `drained` is set when nothing is outstanding."""

    start_at: float = 0.0
    end_at: float = math.inf
    sent: int = 0
    deliveries_in_window: int = 0
    outstanding: int = 0
    refused: int = 0
    out_of_order: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    # Per delivery, beside its latency: the second of the run it was sent in, and its session.
    sent_seconds: list[int] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    sending_done: bool = False

    def second_of_run(self, at: float) -> int:
        """0 for the run's first second; a send late for the last deadline counts in the last."""
        last = math.ceil(self.end_at - self.start_at) - 1
        return min(int(at - self.start_at), last)

    def settle(self, removed: int) -> None:
        self.outstanding -= removed
        if self.sending_done and self.outstanding <= 0:
            self.drained.set()


class SessionTracker:
    """Which of one session's ops each other client has received, and when they were sent."""

    def __init__(self, totals: Totals, clients: int, name: str) -> None:
        self.totals, self.others, self.name = totals, clients - 1, name
        self.sent_at: dict[str, float] = {}
        self.pending: dict[str, int] = {}

    def sent(self, op_id: str, now: float) -> None:
        self.sent_at[op_id] = now
        self.pending[op_id] = self.others
        self.totals.sent += 1
        self.totals.outstanding += self.others

    def received(self, op_id: str, receiver_tag: str, now: float) -> None:
        if op_id.startswith(receiver_tag) or op_id not in self.pending:
            return  # the sender's own confirmation, or an op from before the run
        sent_at = self.sent_at[op_id]
        self.totals.latencies_ms.append((now - sent_at) * 1000)
        self.totals.sent_seconds.append(self.totals.second_of_run(sent_at))
        self.totals.sessions.append(self.name)
        left = self.pending[op_id] - 1
        if left:
            self.pending[op_id] = left
        else:
            del self.pending[op_id]
        self.totals.settle(1)

    def refused(self, op_id: str) -> None:
        left = self.pending.pop(op_id, None)
        if left is not None:
            self.totals.refused += 1
            self.totals.settle(left)

    def lost(self) -> tuple[int, int]:
        """(ops some other client never received, missing deliveries)."""
        return len(self.pending), sum(self.pending.values())


class BenchClient:
    """One raw WebSocket participant: a paced sender and a counting receiver."""

    def __init__(self, seat: Seat, tag: str, index: int, tracker: SessionTracker, load: Load,
                 phase_s: float) -> None:  # fmt: skip
        self.seat, self.tag, self.tracker, self.load = seat, f"{tag}-", tracker, load
        self.phase_s = phase_s
        self.batches = stroke_points(index)
        self.ws: WireSocket | None = None
        self.last_seq = 0
        self.keepalive: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws, raw = await harness.join_on_wire(self.seat, self.load.deflate, JOIN_TIMEOUT_S)
        self.last_seq = int(json.loads(raw)["seq"])
        self.ws.deliver_to(self._on_text)
        self.keepalive = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """Ping until the run starts: the server closes a client silent for idle_timeout_s,
        and joining a few hundred clients can take longer than that."""
        assert self.ws is not None
        with contextlib.suppress(ConnectionError):  # a closed socket is counted at close
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                self.ws.send(json.dumps({"type": "ping", "t": int(time.time() * 1000)}))

    def _on_text(self, text: str, now: float) -> None:
        """Each message as its bytes arrive; `now` is the receipt time."""
        head = harness.EVENT_HEAD.match(text)
        if head is None:
            self._other_frame(text, now)
        else:
            self._on_event(int(head.group(2)), head.group(3), now)

    def _on_event(self, seq: int, op_id: str | None, now: float) -> None:
        totals = self.tracker.totals
        if seq != self.last_seq + 1:
            totals.out_of_order += 1
        self.last_seq = seq
        if now <= totals.end_at:
            totals.deliveries_in_window += 1
        if op_id:
            self.tracker.received(op_id, self.tag, now)

    def _other_frame(self, text: str, now: float) -> None:
        frame = json.loads(text)
        kind = frame.get("type")
        if kind == "error":
            self.tracker.totals.errors[str(frame.get("code"))] += 1
            if frame.get("client_op_id"):
                self.tracker.refused(frame["client_op_id"])
        elif "seq" in frame and kind != "ack":
            self._on_event(int(frame["seq"]), frame.get("client_op_id"), now)

    async def send_loop(self, start_at: float) -> None:
        """Send on deadlines start + phase + k/rate until the run ends."""
        totals, rate, ws = self.tracker.totals, self.load.rate_hz, self.ws
        assert ws is not None
        k, stroke_id = 0, ""
        if self.keepalive is not None:
            self.keepalive.cancel()
        while (deadline := start_at + self.phase_s + k / rate) < totals.end_at:
            if (delay := deadline - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            in_stroke = k % BATCHES_PER_STROKE
            op_id = f"{self.tag}{k}"
            stroke_id = op_id if in_stroke == 0 else stroke_id
            frame = harness.stroke_frame(op_id, stroke_id, self.batches[in_stroke],
                                in_stroke == BATCHES_PER_STROKE - 1)  # fmt: skip
            now = time.monotonic()
            totals.send_lag_ms.append((now - deadline) * 1000)
            self.tracker.sent(op_id, now)
            try:
                ws.send(frame)
            except ConnectionError as exc:
                totals.errors[f"send: {type(exc).__name__}"] += 1
                self.tracker.refused(op_id)
                return
            k += 1

    async def close(self) -> None:
        if self.keepalive is not None:
            self.keepalive.cancel()
        if self.ws is None:
            return
        await self.ws.close()
        reason = f" {self.ws.close_reason}" if self.ws.close_reason else ""
        self.tracker.totals.close_codes[f"{self.ws.close_code}{reason}"] += 1


async def connect_all(clients: Sequence[BenchClient], load: Load) -> None:
    """Sessions join in parallel; one session's clients one after another unless
    `concurrent_joins` (two joins of one session racing on a gateway once lost events)."""
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def connect(group: Sequence[BenchClient]) -> None:
        async with limit:
            if load.concurrent_joins:
                await asyncio.gather(*(client.connect() for client in group))
            else:
                for client in group:
                    await client.connect()

    by_session: dict[SessionTracker, list[BenchClient]] = {}
    for client in clients:
        by_session.setdefault(client.tracker, []).append(client)
    await asyncio.gather(*(connect(group) for group in by_session.values()))


def send_phase_s(load: Load, generator: int, session: int, client: int) -> float:
    """When in each period a client sends: every client of the run at its own evenly spaced
    offset, whichever generator it runs in. (Offsets computed per generator once put two
    generators' clients in the same half of the period: bursts of twice the ops, which alone
    took inkstep's p50 at 10 sessions from 2 to 10 ms.)"""
    # A generator's s-th session is the run's (generator + s * generators)-th: see run_load.
    run_session = generator + session * load.generators
    return (run_session * load.clients + client) / (load.sessions * load.clients) / load.rate_hz


async def _generate(
    index: int, sessions: Sequence[Sequence[Seat]], load: Load, conn: Connection
) -> dict[str, Any]:
    """Connect every seat, report ready, wait for the start time, run, drain, summarise."""
    totals = Totals()
    trackers = [
        SessionTracker(totals, len(seats), f"g{index}s{s}") for s, seats in enumerate(sessions)
    ]
    clients = [
        BenchClient(seat, f"g{index}s{s}c{c}", c, trackers[s], load,
                    phase_s=send_phase_s(load, index, s, c))
        for s, seats in enumerate(sessions) for c, seat in enumerate(seats)
    ]  # fmt: skip
    await connect_all(clients, load)
    # The generator's own full collections (~40 ms, seen in the first second) would count
    # as server latency: what exists now lives for the run, so keep it out of them.
    gc.collect()
    gc.freeze()
    conn.send(("ready", None))
    start_at = await asyncio.to_thread(conn.recv)
    totals.start_at, totals.end_at = start_at, start_at + load.duration_s
    await asyncio.gather(*(client.send_loop(start_at) for client in clients))
    totals.sending_done = True
    totals.settle(0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(totals.drained.wait(), load.drain_s)
    await asyncio.gather(*(client.close() for client in clients))
    return _summary(totals, trackers)


def _summary(totals: Totals, trackers: Sequence[SessionTracker]) -> dict[str, Any]:
    lost = [tracker.lost() for tracker in trackers]
    return {
        "sent": totals.sent, "deliveries_in_window": totals.deliveries_in_window,
        "lost": sum(ops for ops, _ in lost), "lost_deliveries": sum(d for _, d in lost),
        "refused": totals.refused, "out_of_order": totals.out_of_order,
        "errors": dict(totals.errors), "close_codes": dict(totals.close_codes),
        "latencies_ms": totals.latencies_ms, "send_lag_ms": totals.send_lag_ms,
        "sent_seconds": totals.sent_seconds, "sessions": totals.sessions,
    }  # fmt: skip


def generator_process(
    index: int, sessions: Sequence[Sequence[Seat]], load: Load, conn: Connection
) -> None:
    """The target of one load-generator process; it answers through `conn`."""
    try:
        with asyncio.Runner(loop_factory=harness.event_loop_factory()) as runner:
            result = runner.run(_generate(index, sessions, load, conn))
        conn.send(("result", result))
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


# ---- one run against one server ---------------------------------------------------------


@dataclass
class Target:
    """A server to load: its seats, and what to sample for its CPU and RSS."""

    name: str
    seats: list[list[Seat]]
    pids: list[int]
    markers: list[str] = field(default_factory=list)


def run_load(target: Target, load: Load) -> dict[str, Any]:
    """Drive `target` with `load` from generator processes; one row of figures."""
    context = multiprocessing.get_context("spawn")
    parts = [target.seats[i :: load.generators] for i in range(load.generators)]
    pipes, procs = [], []
    for index, part in enumerate(parts):
        mine, theirs = context.Pipe()
        proc = context.Process(target=generator_process, args=(index, part, load, theirs),
                               name=f"bench-generator-{index}", daemon=True)  # fmt: skip
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    try:
        for pipe in pipes:
            _expect(pipe, "ready", timeout_s=JOIN_TIMEOUT_S * 3)
        start_at = time.monotonic() + 0.5
        for pipe in pipes:
            pipe.send(start_at)
        server_use, generator_use = _sample_window(target, procs, start_at, load.duration_s)
        results = [_expect(pipe, "result", timeout_s=load.drain_s + 120) for pipe in pipes]
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return _row(target.name, load, results, server_use, generator_use)


def _expect(pipe: Connection, kind: str, timeout_s: float) -> Any:
    if not pipe.poll(timeout_s):
        raise RuntimeError(f"a load generator sent no {kind!r} within {timeout_s} s")
    got, value = pipe.recv()
    if got != kind:
        raise RuntimeError(f"a load generator failed: {value}")
    return value


def _sample_window(
    target: Target, procs: Sequence[multiprocessing.process.BaseProcess], start_at: float,
    duration_s: float,
) -> tuple[Usage | None, Usage]:  # fmt: skip
    """Sample the server's and the generators' process trees over the load window."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    server = TreeSampler(target.pids, target.markers).start() if target.pids else None
    generators = TreeSampler([p.pid for p in procs if p.pid is not None]).start()
    time.sleep(max(0.0, start_at + duration_s - time.monotonic()))
    return (server.stop() if server else None), generators.stop()


def _row(
    name: str, load: Load, results: Sequence[dict[str, Any]], server: Usage | None,
    generators: Usage,
) -> dict[str, Any]:  # fmt: skip
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    lags = sorted(x for r in results for x in r["send_lag_ms"])
    p99 = harness.percentile(latencies, 99)
    sent = sum(r["sent"] for r in results)
    return {
        "server": name, "sessions": load.sessions, "clients": load.clients,
        "rate_hz": load.rate_hz, "duration_s": load.duration_s,
        "sent": sent, "sent_per_s": sent / load.duration_s,
        "deliveries_per_s": sum(r["deliveries_in_window"] for r in results) / load.duration_s,
        "p50_ms": harness.percentile(latencies, 50), "p95_ms": harness.percentile(latencies, 95),
        "p99_ms": p99, "max_ms": latencies[-1] if latencies else None,
        "over_p99": tail_spread(results, p99, load.sessions),
        "received_by_others": len(latencies),
        "lost": sum(r["lost"] for r in results),
        "lost_deliveries": sum(r["lost_deliveries"] for r in results),
        "out_of_order": sum(r["out_of_order"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "errors": dict(sum((Counter(r["errors"]) for r in results), Counter())),
        "close_codes": dict(sum((Counter(r["close_codes"]) for r in results), Counter())),
        "server_cpu_percent": server.cpu_percent if server else None,
        "server_cpu_ms_per_op": (server.cpu_percent * 10 / (sent / load.duration_s))
        if server and sent
        else None,
        "server_rss_mib": server.peak_rss_mib if server else None,
        "server_processes": server.processes if server else None,
        "server_top": server.as_dict()["top"] if server else [],
        "generator_cpu_percent": generators.cpu_percent,
        "send_lag_p99_ms": harness.percentile(lags, 99),
        "send_lag_max_ms": lags[-1] if lags else None,
    }  # fmt: skip


def tail_spread(results: Sequence[dict[str, Any]], p99_ms: float | None, sessions: int
                ) -> dict[str, Any] | None:  # fmt: skip
    """Where the deliveries slower than p99 lie: in how many seconds of the run, and how many
    sessions each such second hit. Many sessions at once points at something they share (a
    process, the machine); one at a time, at something of each session's own."""
    if p99_ms is None:
        return None
    hits: dict[int, set[str]] = {}
    for r in results:
        marks = zip(r["latencies_ms"], r["sent_seconds"], r["sessions"], strict=True)
        for latency, second, session in marks:
            if latency > p99_ms:
                hits.setdefault(second, set()).add(session)
    spread = sorted(len(hit) for hit in hits.values())
    return {"seconds": len(hits), "sessions": sessions, "at_seconds": sorted(hits),
            "sessions_per_second_median": spread[len(spread) // 2] if spread else 0,
            "sessions_per_second_max": spread[-1] if spread else 0}  # fmt: skip


# ---- the servers ------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the load against inkstep (and the baseline with --baseline); the figures as a dict."""
    load = Load.from_args(args)
    result: dict[str, Any] = {"load": asdict(load), "load_average_1m": harness.load_average()}
    rows = [_run_inkstep(args, load)]
    if args.relay:
        rows.append(_run_relay(load))
    if args.sequenced:
        rows.append(_run_relay(load, sequenced=True))
    if args.baseline:
        rows.append(_run_baseline(load))
    result["p99_ratios"] = {row["server"]: _ratio(rows[0]["p99_ms"], row["p99_ms"])
                            for row in rows[1:]}  # fmt: skip
    result["rows"] = rows
    return result


def _run_inkstep(args: argparse.Namespace, load: Load) -> dict[str, Any]:
    if args.url:
        secret = harness.default_secret()
        seats = asyncio.run(harness.provision_sessions(args.url, load.sessions, load.clients,
                                                       secret, _tag()))  # fmt: skip
        return run_load(Target("inkstep", seats, list(args.server_pid)), load)
    with harness.InkstepServer(args.workers, extra_env=server_env(args)) as server:
        seats = asyncio.run(harness.provision_sessions(server.url, load.sessions, load.clients,
                                                       server.secret, _tag()))  # fmt: skip
        return run_load(Target("inkstep", seats, [server.pid], [str(server.data_dir)]), load)


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """What the bench's own server is started with beyond the harness's defaults."""
    return {"INKSTEP_SESSION_HOSTS": str(args.session_hosts)}


def _tag() -> str:
    return f"{os.getpid() % 10000}-{int(time.time()) % 100000}-"


@contextmanager
def baseline_server() -> Iterator[harness.ServerProcess]:
    """The minimal broadcast server in a child process on a free port."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"inkstep-bench-baseline-{port}.log"
    command = [sys.executable, "-m", "inkstep.bench.baseline", "--port", str(port)]
    server = harness.ServerProcess(command, port, dict(os.environ), log_path)
    try:
        yield server.start(health_path=None, timeout_s=30)
    finally:
        server.stop()
        log_path.unlink(missing_ok=True)


def room_seats(port: int, load: Load) -> list[list[Seat]]:
    """The seats of the baseline and the relay: hello tokens `room<s>:user<c>`."""
    ws_url = f"ws://127.0.0.1:{port}/"
    return [[Seat(ws_url, f"room{s}:user{c}", f"user{c}") for c in range(load.clients)]
            for s in range(load.sessions)]  # fmt: skip


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


@contextmanager
def relay_server(sequenced: bool = False) -> Iterator[tuple[harness.ServerProcess, list[int]]]:
    """The Redis-stream relay in a child process, with a Redis of its own (set up as the one
    `inkstep serve` starts), both on free ports, and with `sequenced` its sequencer process;
    with the pids of all of them."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="inkstep-bench-relay-") as folder:
        with EmbeddedRedis(Path(folder) / "redis") as redis_server, ExitStack() as stack:
            assert redis_server.process is not None
            pids = [redis_server.process.pid]
            log_path = Path(folder) / "relay.log"
            command = [sys.executable, "-m", "inkstep.bench.stream_relay", "--port", str(port),
                       "--redis-url", redis_server.url]  # fmt: skip
            if sequenced:
                pids.append(stack.enter_context(_sequencer(redis_server.url, log_path)).pid)
                command.append("--sequenced")
            server = harness.ServerProcess(command, port, dict(os.environ), log_path)
            try:
                yield server.start(health_path=None, timeout_s=30), [server.pid, *pids]
            finally:
                server.stop()


@contextmanager
def _sequencer(redis_url: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "inkstep.bench.sequencer", "--redis-url", redis_url]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def _run_relay(load: Load, sequenced: bool = False) -> dict[str, Any]:
    with relay_server(sequenced) as (server, pids):
        name = "sequenced" if sequenced else "relay"
        return run_load(Target(name, room_seats(server.port, load), pids), load)


def _run_baseline(load: Load) -> dict[str, Any]:
    with baseline_server() as server:
        return run_load(Target("baseline", room_seats(server.port, load), [server.pid]), load)


# ---- idle -------------------------------------------------------------------------------


def measure_idle(args: argparse.Namespace) -> dict[str, Any]:
    """The server's CPU while nobody is connected, after `--settle` seconds."""
    if args.url:
        if not args.server_pid:
            raise SystemExit("--idle with --url needs --server-pid to know what to measure")
        return _idle_of(list(args.server_pid), [], args.idle, args.settle)
    with harness.InkstepServer(args.workers) as server:
        return _idle_of([server.pid], [str(server.data_dir)], args.idle, args.settle)


def _idle_of(pids: list[int], markers: list[str], seconds: float, settle_s: float
             ) -> dict[str, Any]:  # fmt: skip
    time.sleep(settle_s)
    sampler = TreeSampler(pids, markers, interval_s=1.0).start()
    time.sleep(seconds)
    usage = sampler.stop()
    return {"idle_s": seconds, "settle_s": settle_s, "load_average_1m": harness.load_average(),
            **usage.as_dict()}  # fmt: skip


# ---- printing ---------------------------------------------------------------------------

COLUMNS = [
    ("server", "server"), ("sent_per_s", "sent/s"), ("deliveries_per_s", "deliv/s"),
    ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
    ("lost", "lost"), ("out_of_order", "out-of-order"), ("refused", "refused"),
    ("server_cpu_percent", "server CPU%"), ("server_cpu_ms_per_op", "CPU ms/op"),
    ("server_rss_mib", "server RSS MiB"),
    ("generator_cpu_percent", "gen CPU%"), ("send_lag_p99_ms", "send lag p99 ms"),
]  # fmt: skip


def print_result(result: dict[str, Any]) -> None:
    """The rows as a table, then the p99 ratio and where the server's CPU went."""
    load = result["load"]
    print(f"fanout: {load['sessions']} sessions x {load['clients']} clients x "
          f"{load['rate_hz']:g} Hz for {load['duration_s']:g} s, {load['generators']} generator "
          f"process(es), deflate {'on' if load['deflate'] else 'off'}; "
          f"machine load average {result['load_average_1m']:.2f}")  # fmt: skip
    harness.print_table(result["rows"], COLUMNS)
    for other, ratio in result["p99_ratios"].items():
        print(f"p99 ratio inkstep / {other}: {harness.fmt(ratio, 2)}x")
    for row in result["rows"]:
        if spread := row["over_p99"]:
            at = spread["at_seconds"]
            where = f" (second {', '.join(map(str, at))})" if 0 < len(at) <= 5 else ""
            print(f"{row['server']}: deliveries over p99 were sent in {spread['seconds']} of "
                  f"{load['duration_s']:g} s{where}, hitting "
                  f"{spread['sessions_per_second_median']} (median) and at most "
                  f"{spread['sessions_per_second_max']} of {spread['sessions']} sessions in "
                  "one second")  # fmt: skip
        if row["errors"] or row["close_codes"]:
            print(f"{row['server']}: errors {row['errors']}, close codes {row['close_codes']}")
        if row["server_top"]:
            top = ", ".join(f"{t['process']} {t['cpu_percent']:.1f}%" for t in row["server_top"])
            print(f"{row['server']} CPU by process ({row['server_processes']} processes): {top}")


def print_idle(idle: dict[str, Any]) -> None:
    """One line for the idle CPU, then the busiest processes."""
    print(f"idle server: {idle['cpu_percent']:.1f}% of one core over {idle['idle_s']:g} s "
          f"(after {idle['settle_s']:g} s to settle), {idle['processes']} processes, "
          f"RSS {idle['rss_mib']:.0f} MiB; machine load average "
          f"{idle['load_average_1m']:.2f}")  # fmt: skip
    for top in idle["top"]:
        print(f"  {top['process']}: {top['cpu_percent']:.1f}%")
