"""Late join: after one client drew N strokes, how long until a new client has the state.

One client draws `--strokes` strokes of `--points` points (one final batch each, sent in
chunks as fast as the server confirms them), then a late joiner connects `--joins` times.
A join is timed from opening the socket to having parsed the snapshot and built a local
stroke map from it (applied); the time until the snapshot's last byte arrived is shown too.
The first join right after the drawing is shown on its own as well: it shares the session
with the work the drawing left (the checkpoint, the Doc catching up), and is usually the
slowest.

With `--drawing-hz HZ` the drawer goes on drawing during the late joins, one 20-point stroke
HZ times a second, as in a lesson someone joins late: every join then finds strokes changed
since the last one. The drawer's strokes are timed from sending to the session's decision
(the event's `ts_server`; one machine, one clock): how long its ops waited meanwhile. Not to
their receipt, which the joiner's parse, in this same process, would delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from inkstep.bench import harness
from inkstep.bench.harness import Seat
from inkstep.client import decode_frame

REFUSALS_TO_RETRY = {"rate_limited", "unavailable"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench join`."""
    parser.add_argument("--strokes", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20, help="points per stroke")
    parser.add_argument("--joins", type=int, default=5, help="late joins to time")
    parser.add_argument("--chunk", type=int, default=200, help="ops in flight while drawing")
    parser.add_argument(
        "--drawing-hz",
        type=float,
        default=0.0,
        help="strokes a second the drawer goes on sending during the late joins (0: none)",
    )
    parser.add_argument("--url", default=None, help="an already running server (else start one)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes of its own server (1, as inkstep serve)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """`inkstep bench join`: measure, then print a summary or JSON."""
    harness.quiet_http_logs()
    result = measure(args)
    harness.print_json(result) if args.json else print_result(result)
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Draw, then time the late joins; the figures as a dict."""
    if args.url:
        return asyncio.run(_measure(args, args.url, harness.default_secret()))
    with harness.InkstepServer(args.workers) as server:
        return asyncio.run(_measure(args, server.url, server.secret))


async def _measure(args: argparse.Namespace, url: str, secret: str | None) -> dict[str, Any]:
    tag = f"join{int(time.time() * 1000) % 10**8}"
    drawer_seat, joiner_seat = await harness.provision_session(url, 2, secret, tag)
    started = time.monotonic()
    await draw(drawer_seat, stroke_frames(args.strokes, args.points, tag), args.chunk)
    draw_s = time.monotonic() - started
    live = LiveDrawer(drawer_seat, args.drawing_hz, args.points, tag)
    async with live:
        joins = [await late_join(joiner_seat) for _ in range(args.joins)]
    decided = sorted(live.decided_ms)
    received = sorted(join.received_ms for join in joins)
    applied = sorted(join.applied_ms for join in joins)
    return {
        "strokes": args.strokes, "points_per_stroke": args.points, "joins": args.joins,
        "draw_s": draw_s, "draw_ops_per_s": args.strokes / draw_s if draw_s else None,
        "snapshot_bytes": joins[-1].snapshot_bytes,
        "strokes_in_snapshot": joins[-1].strokes,
        "received_first_ms": joins[0].received_ms, "applied_first_ms": joins[0].applied_ms,
        "received_p50_ms": harness.percentile(received, 50), "received_max_ms": received[-1],
        "applied_p50_ms": harness.percentile(applied, 50), "applied_max_ms": applied[-1],
        "drawing_hz": args.drawing_hz, "drawing_sent": live.sent_count,
        "drawing_confirmed": len(decided),
        "drawing_decided_p50_ms": harness.percentile(decided, 50) if decided else None,
        "drawing_decided_max_ms": decided[-1] if decided else None,
        "load_average_1m": harness.load_average(),
    }  # fmt: skip


# ---- drawing ----------------------------------------------------------------------------


def stroke_frames(strokes: int, points: int, tag: str) -> list[tuple[str, str]]:
    """(op id, frame) of `strokes` one-batch strokes: short diagonals spread over the canvas."""
    frames = []
    for i in range(strokes):
        x0 = 10 + (i * 37) % (harness.CANVAS_W - 20 - points)
        y0 = 10 + (i * 53) % (harness.CANVAS_H - 20 - points)
        line = [[x0 + j, y0 + j * 0.5, 0.5, j * 8] for j in range(points)]
        op_id = f"{tag}-{i}"
        frames.append((op_id, harness.stroke_frame(op_id, op_id, json.dumps(line), True)))
    return frames


@dataclass
class Drawer:
    """Sends ops a chunk at a time and waits for each to be confirmed or refused."""

    ws: Any
    waiting: dict[str, str] = field(default_factory=dict)
    to_retry: list[tuple[str, str]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None

    async def receive(self) -> None:
        async for text in self.ws:
            head = harness.EVENT_HEAD.match(text)
            if head is not None:
                self._answered(head.group(3))
                continue
            frame = json.loads(text)
            if frame.get("type") == "error" and frame.get("client_op_id") in self.waiting:
                if frame.get("code") not in REFUSALS_TO_RETRY:
                    self.failure = f"{frame.get('code')}: {frame.get('message')}"
                op_id = frame["client_op_id"]
                self.to_retry.append((op_id, self.waiting[op_id]))
                self._answered(op_id)
            elif frame.get("type") == "ack":
                self._answered(frame.get("client_op_id"))

    def _answered(self, op_id: str | None) -> None:
        if op_id is not None and self.waiting.pop(op_id, None) is not None and not self.waiting:
            self.answered.set()

    async def send_chunk(self, chunk: list[tuple[str, str]], timeout_s: float) -> None:
        """Send, then wait for an answer to every op of the chunk."""
        self.waiting, self.to_retry = dict(chunk), []
        self.answered.clear()
        for _, frame in chunk:
            await self.ws.send(frame)
        await asyncio.wait_for(self.answered.wait(), timeout_s)
        if self.failure is not None:
            raise RuntimeError(f"the server refused a stroke: {self.failure}")


async def draw(seat: Seat, frames: list[tuple[str, str]], chunk_size: int) -> None:
    """Send every frame; refused ones (rate limit) are sent again after a pause."""
    ws, _, _ = await harness.open_and_join(seat)
    drawer = Drawer(ws)
    receiver = asyncio.create_task(drawer.receive())
    try:
        queue = list(frames)
        while queue:
            chunk, queue = queue[:chunk_size], queue[chunk_size:]
            await drawer.send_chunk(chunk, timeout_s=120)
            if drawer.to_retry:
                queue = drawer.to_retry + queue
                await asyncio.sleep(1.0)
    finally:
        await ws.close()
        await asyncio.gather(receiver, return_exceptions=True)


class LiveDrawer:
    """Draws `hz` one-batch strokes a second while the block runs (nothing when hz is 0),
    timing each from sending it to its event's decision (`ts_server`, wall-clock ms)."""

    def __init__(self, seat: Seat, hz: float, points: int, tag: str) -> None:
        self.seat, self.hz, self.points, self.tag = seat, hz, points, f"{tag}-live"
        self.sent_at: dict[str, float] = {}
        self.decided_ms: list[float] = []
        self.sent_count = 0
        self._stop = asyncio.Event()
        self._settled = asyncio.Event()  # stopped, and every stroke sent has its event
        self._sender: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._ws: Any = None

    async def __aenter__(self) -> LiveDrawer:
        if self.hz > 0:
            self._ws, _, _ = await harness.open_and_join(self.seat)
            self._receiver = asyncio.create_task(self._receive())
            self._sender = asyncio.create_task(self._send())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sender is None or self._receiver is None:
            return
        self._stop.set()
        await self._sender
        if not self.sent_at:
            self._settled.set()
        with contextlib.suppress(TimeoutError):  # the last strokes' events
            await asyncio.wait_for(self._settled.wait(), 5.0)
        await self._ws.close()
        await asyncio.gather(self._receiver, return_exceptions=True)

    async def _send(self) -> None:
        k = 0
        while not self._stop.is_set():
            op_id, frame = stroke_frames(1, self.points, f"{self.tag}{k}")[0]
            self.sent_at[op_id] = time.time() * 1000
            await self._ws.send(frame)
            self.sent_count, k = self.sent_count + 1, k + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1 / self.hz)

    async def _receive(self) -> None:
        async for text in self._ws:
            head = harness.EVENT_HEAD.match(text)
            if head is not None and (sent := self.sent_at.pop(head.group(3) or "", None)):
                self.decided_ms.append(json.loads(text)["ts_server"] - sent)
                if self._stop.is_set() and not self.sent_at:
                    self._settled.set()


# ---- joining ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinTiming:
    """One late join."""

    received_ms: float
    applied_ms: float
    snapshot_bytes: int
    strokes: int


async def late_join(seat: Seat) -> JoinTiming:
    """Open a socket, take the snapshot, build the stroke map, and close."""
    started = time.perf_counter()
    ws, _, raw = await harness.open_and_join(seat)
    received = time.perf_counter()
    try:
        snapshot = decode_frame(raw)  # as the Python client does
        strokes = {stroke["stroke_id"]: stroke for stroke in snapshot["payload"]["strokes"]}
        applied = time.perf_counter()
    finally:
        await ws.close()
    return JoinTiming(
        (received - started) * 1000, (applied - started) * 1000, len(raw.encode()), len(strokes)
    )


def print_result(result: dict[str, Any]) -> None:
    """A few lines of figures."""
    print(f"join: {result['strokes']} strokes x {result['points_per_stroke']} points drawn in "
          f"{result['draw_s']:.1f} s ({result['draw_ops_per_s']:.0f} ops/s); "
          f"machine load average {result['load_average_1m']:.2f}")  # fmt: skip
    print(f"snapshot: {result['snapshot_bytes']} bytes, {result['strokes_in_snapshot']} strokes")
    rows = [
        {"stage": "snapshot received", "first": result["received_first_ms"],
         "p50": result["received_p50_ms"], "max": result["received_max_ms"]},
        {"stage": "snapshot applied", "first": result["applied_first_ms"],
         "p50": result["applied_p50_ms"], "max": result["applied_max_ms"]},
    ]  # fmt: skip
    print(f"late joins ({result['joins']}), ms from opening the socket:")
    columns = [("stage", "stage"), ("first", "first ms"), ("p50", "p50 ms"), ("max", "max ms")]
    harness.print_table(rows, columns)
    if result["drawing_hz"]:
        print(f"while the drawer drew {result['drawing_hz']:g} strokes/s: "
              f"{result['drawing_confirmed']} of {result['drawing_sent']} confirmed, "
              f"send to the session's decision p50 {result['drawing_decided_p50_ms']:.1f} ms, "
              f"max {result['drawing_decided_max_ms']:.1f} ms")  # fmt: skip
