"""The Python client SDK: one participant's connection to a session.

It keeps `last_seq`, applies events strictly in seq order (a gap means it missed something:
it reconnects and resumes), resends unconfirmed ops with their client_op_id after a
reconnect, batches stroke points every ~75 ms and throttles presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

FATAL_CLOSE_CODES = {4401, 4403, 4404}
MAX_POINTS = 512
DEFAULT_STYLE = {"color": "#1f2937", "width": 3.0, "tool": "pen"}


def new_op_id() -> str:
    return uuid.uuid4().hex[:20]


class SessionClosed(Exception):
    """The server refused the connection for good (bad token, forbidden, no session)."""


class _StrokeBuffer:
    def __init__(self, stroke_id: str, layer: str, style: dict[str, Any]) -> None:
        self.stroke_id, self.layer, self.style = stroke_id, layer, style
        self.pending: list[list[float]] = []
        self.lock = asyncio.Lock()
        self.sent_first = False
        self.final = False


def decode_frame(text: str | bytes) -> dict[str, Any]:
    """One server frame. A late joiner's snapshot can hold hundreds of thousands of small
    objects, all kept for the connection's life. They are made with the cyclic GC paused and
    then moved straight to its oldest generation: the young generations' passes would only
    scan them all, twice, to find them alive (55 of the ~150 ms a 10k-stroke snapshot took to
    apply here). orjson parses about twice as fast as json."""
    if len(text) < 65_536:
        small: dict[str, Any] = orjson.loads(text)
        return small
    collecting = gc.isenabled()
    gc.disable()
    try:
        frame: dict[str, Any] = orjson.loads(text)
    finally:
        _move_to_oldest_generation()
        if collecting:
            gc.enable()
    return frame


def _move_to_oldest_generation() -> None:
    """Every object the collector tracks, into its oldest generation (two list splices).

    Not in a process that keeps objects frozen itself: the unfreeze would undo its freeze.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


class InkstepClient:
    """An async session client; use `async with InkstepClient(url, token) as client:`."""

    def __init__(
        self,
        ws_url: str | list[str],
        token: str,
        *,
        last_seq: int | None = None,
        name: str = "inkstep-python/0.1",
        batch_interval_s: float = 0.075,
        presence_interval_s: float = 0.05,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        heartbeat_s: float = 10.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        # Several gateway URLs: a reconnect moves on to the next one.
        self.ws_urls = [ws_url] if isinstance(ws_url, str) else list(ws_url)
        self.token, self.name = token, name
        self.last_seq = last_seq
        self.batch_interval_s = batch_interval_s
        self.presence_interval_s = presence_interval_s
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.heartbeat_s = heartbeat_s
        self.on_event = on_event
        self.user_id: str | None = None
        self.role: str | None = None
        self.step_id: str | None = None
        self.welcome: dict[str, Any] | None = None
        self.snapshot: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self.strokes: dict[str, dict[str, Any]] = {}
        self.layers: dict[str, dict[str, Any]] = {}
        self.participants: dict[str, dict[str, Any]] = {}
        self.scores: list[dict[str, Any]] = []
        self.presence: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.close_codes: list[int] = []
        self.unconfirmed: dict[str, dict[str, Any]] = {}
        self.confirmed: dict[str, int] = {}
        self.connections = 0
        self.connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._changed = asyncio.Condition()
        self._strokes_open: dict[str, _StrokeBuffer] = {}
        self._presence_next: dict[str, Any] | None = None
        self._presence_sent_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._stopping = False
        self.fatal: SessionClosed | None = None

    # ---- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> InkstepClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, wait: bool = True, timeout_s: float = 30.0) -> None:
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name="inkstep-connection"),
            asyncio.create_task(self._flush_loop(), name="inkstep-flush"),
            asyncio.create_task(self._heartbeat(), name="inkstep-heartbeat"),
        ]
        if wait:
            await self.wait_connected(timeout_s)

    async def close(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_connected(self, timeout_s: float = 30.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout_s)
        if self.fatal is not None:
            raise self.fatal

    async def drop_connection(self) -> None:
        """Close the socket as a network failure would; the client reconnects by itself."""
        if self._ws is not None:
            await self._ws.close(code=4000, reason="client dropped")

    async def _connection_loop(self) -> None:
        attempt, failures = 0, 0
        while not self._stopping:
            url = self.ws_urls[failures % len(self.ws_urls)]
            try:
                async with websockets.connect(
                    url, max_size=None, open_timeout=10, ping_interval=20
                ) as ws:
                    self._ws = ws
                    attempt = 0
                    await self._session(ws)
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake,
                    TimeoutError) as exc:  # fmt: skip
                logger.debug("connection lost: %s", exc)
            finally:
                self.connected.clear()
                if self._ws is not None and self._ws.close_code is not None:
                    self.close_codes.append(self._ws.close_code)
                    if self._ws.close_code in FATAL_CLOSE_CODES:
                        self.fatal = SessionClosed(
                            f"closed with {self._ws.close_code}: {self._ws.close_reason}"
                        )
                        self._stopping = True
                        self.connected.set()
                self._ws = None
            if self._stopping:
                return
            attempt += 1
            failures += 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(attempt, 10))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _session(self, ws: ClientConnection) -> None:
        hello = {"type": "hello", "token": self.token, "last_seq": self.last_seq,
                 "client": self.name}  # fmt: skip
        await ws.send(json.dumps(hello))
        async for text in ws:
            frame = decode_frame(text)
            if frame.get("type") == "welcome":
                await self._on_welcome(ws, frame)
                continue
            if not await self._handle(frame):
                await ws.close(code=4000, reason="missed events; resuming")
                return

    async def _on_welcome(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        self.welcome = frame
        self.user_id, self.role = frame["user_id"], frame["role"]
        self.step_id = frame.get("step_id", self.step_id)
        self.connections += 1
        if frame["resume"] == "tail":
            await self._resend_unconfirmed(ws)
            self.connected.set()

    async def _resend_unconfirmed(self, ws: ClientConnection) -> None:
        for op in list(self.unconfirmed.values()):
            await ws.send(json.dumps(op))

    # ---- incoming -------------------------------------------------------------------

    async def _handle(self, frame: dict[str, Any]) -> bool:
        """Apply one frame; False means a seq gap was seen and the client must resume."""
        kind = frame.get("type")
        if kind == "session_snapshot":
            self._apply_snapshot(frame)
            if self._ws is not None:
                await self._resend_unconfirmed(self._ws)
            self.connected.set()
        elif "seq" in frame and kind not in ("ack",):
            seq = frame["seq"]
            if self.last_seq is not None and seq <= self.last_seq:
                return True
            if seq != (self.last_seq or 0) + 1:
                logger.info("seq gap: got %s after %s", seq, self.last_seq)
                return False
            self._apply_event(frame)
        elif kind == "ack":
            self._confirm(frame["client_op_id"], frame["seq"])
            self.acks.append(frame)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "presence":
            self.presence[frame["user_id"]] = frame["payload"]
        elif kind == "pong" and (frame.get("last_seq") or 0) > (self.last_seq or 0):
            logger.info("behind the server (%s < %s): resuming", self.last_seq, frame["last_seq"])
            return False
        async with self._changed:
            self._changed.notify_all()
        return True

    def _apply_snapshot(self, frame: dict[str, Any]) -> None:
        payload = frame["payload"]
        self.snapshot = frame
        self.last_seq = frame["seq"]
        self.step_id = frame["step_id"]
        self.strokes = {s["stroke_id"]: dict(s) for s in payload["strokes"]}
        self.layers = {k: dict(v) for k, v in payload["layers"].items()}
        self.participants = {p["user_id"]: p for p in payload["participants"]}
        self.scores = list(payload["scores"])
        self.events = []

    def _apply_event(self, event: dict[str, Any]) -> None:
        self.last_seq = event["seq"]
        self.events.append(event)
        kind, payload = event["type"], event["payload"]
        if kind == "stroke_append":
            stroke = self.strokes.get(payload["stroke_id"])
            if stroke is None:
                self.strokes[payload["stroke_id"]] = {
                    "stroke_id": payload["stroke_id"], "author": event["author"],
                    "step_id": event["step_id"], "layer": payload["layer"],
                    "style": payload["style"], "points": [list(p) for p in payload["points"]],
                    "final": payload["final"], "deleted": False,
                }  # fmt: skip
            else:
                stroke["points"].extend(list(p) for p in payload["points"])
                stroke["final"] = stroke["final"] or payload["final"]
        elif kind in ("undo", "redo") and payload["target"] in self.strokes:
            self.strokes[payload["target"]]["deleted"] = kind == "undo"
        elif kind == "layer_set":
            self.layers.setdefault(payload["layer"], {}).update(payload["props"])
        elif kind == "step_change":
            self.step_id = payload["to_step"]
        elif kind == "score_update":
            self.scores.append({"seq": event["seq"], **payload})
        elif kind == "participant":
            if payload["state"] == "joined":
                self.participants[payload["user_id"]] = {
                    "user_id": payload["user_id"],
                    "role": payload["role"],
                }
            else:
                self.participants.pop(payload["user_id"], None)
        op_id = event.get("client_op_id")
        mine = event["author"] == self.user_id or (
            kind == "score_update" and payload.get("user_id") == self.user_id
        )
        if op_id is not None and mine:
            self._confirm(op_id, event["seq"])
        if self.on_event is not None:
            self.on_event(event)

    def _confirm(self, op_id: str, seq: int) -> None:
        self.unconfirmed.pop(op_id, None)
        self.confirmed[op_id] = seq

    def _on_error(self, frame: dict[str, Any]) -> None:
        self.errors.append(frame)
        op_id = frame.get("client_op_id")
        if op_id is None or op_id not in self.unconfirmed:
            return
        if frame["code"] == "unavailable":
            asyncio.get_running_loop().call_later(0.5, self._retry, op_id)
        else:
            self.unconfirmed.pop(op_id, None)

    def _retry(self, op_id: str) -> None:
        op = self.unconfirmed.get(op_id)
        if op is not None and self._ws is not None and self.connected.is_set():
            task = asyncio.ensure_future(self._send_quietly(op))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # ---- outgoing -------------------------------------------------------------------

    async def _send_quietly(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def send_op(self, op: dict[str, Any]) -> str:
        """Send an ordered op; it is resent after reconnects until confirmed or refused."""
        op.setdefault("client_op_id", new_op_id())
        self.unconfirmed[op["client_op_id"]] = op
        if self.connected.is_set():
            await self._send_quietly(op)
        return str(op["client_op_id"])

    async def send_raw(self, text: str) -> None:
        """Send any text frame as is (for testing the server's validation)."""
        assert self._ws is not None
        await self._ws.send(text)

    async def draw_stroke(
        self, points: list[list[float]], layer: str = "ink", style: dict[str, Any] | None = None,
        step_id: str | None = None,
    ) -> str:  # fmt: skip
        """Send a whole stroke now, in batches of at most 512 points; returns its stroke_id."""
        stroke_id = new_op_id()
        chunks = [points[i : i + MAX_POINTS] for i in range(0, len(points), MAX_POINTS)]
        for index, chunk in enumerate(chunks):
            await self.send_op({
                "type": "stroke_append", "client_op_id": stroke_id if index == 0 else new_op_id(),
                "step_id": step_id or self.step_id,
                "payload": {"stroke_id": stroke_id, "layer": layer, "points": chunk,
                            "style": style or DEFAULT_STYLE, "final": index == len(chunks) - 1},
            })  # fmt: skip
        return stroke_id

    def begin_stroke(self, layer: str = "ink", style: dict[str, Any] | None = None) -> str:
        """Start a live stroke; points added with add_point go out every batch interval."""
        stroke_id = new_op_id()
        self._strokes_open[stroke_id] = _StrokeBuffer(stroke_id, layer, style or DEFAULT_STYLE)
        return stroke_id

    def add_point(self, stroke_id: str, x: float, y: float, pressure: float = 0.5,
                  t_ms: float | None = None) -> None:  # fmt: skip
        t = t_ms if t_ms is not None else time.monotonic() * 1000 % 1e9
        self._strokes_open[stroke_id].pending.append([x, y, pressure, t])

    async def end_stroke(self, stroke_id: str) -> None:
        buffer = self._strokes_open[stroke_id]
        buffer.final = True
        await self._flush_stroke(buffer)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval_s)
            for buffer in list(self._strokes_open.values()):
                if len(buffer.pending) > 1 and self.connected.is_set():
                    await self._flush_stroke(buffer)
            if self._presence_next is not None and self.connected.is_set():
                payload, self._presence_next = self._presence_next, None
                await self._send_presence(payload)

    async def _flush_stroke(self, buffer: _StrokeBuffer) -> None:
        """Send the buffered points; while the stroke is open its newest point stays back,
        so the closing batch always has a point of its own (no repeated or made-up point)."""
        async with buffer.lock:  # batches of one stroke leave in order, the final one last
            keep = 0 if buffer.final else 1
            while len(buffer.pending) > keep:
                size = min(MAX_POINTS, len(buffer.pending) - keep)
                chunk, buffer.pending = buffer.pending[:size], buffer.pending[size:]
                final = buffer.final and not buffer.pending
                op_id = buffer.stroke_id if not buffer.sent_first else new_op_id()
                buffer.sent_first = True
                await self.send_op({
                    "type": "stroke_append", "client_op_id": op_id, "step_id": self.step_id,
                    "payload": {"stroke_id": buffer.stroke_id, "layer": buffer.layer,
                                "points": chunk, "style": buffer.style, "final": final},
                })  # fmt: skip
            if buffer.final:
                self._strokes_open.pop(buffer.stroke_id, None)

    async def undo(self, target: str) -> str:
        return await self.send_op({"type": "undo", "payload": {"target": target}})

    async def redo(self, target: str) -> str:
        return await self.send_op({"type": "redo", "payload": {"target": target}})

    async def layer_set(self, layer: str, **props: Any) -> str:
        return await self.send_op(
            {"type": "layer_set", "payload": {"layer": layer, "props": props}}
        )

    async def step_complete(self, step_id: str | None = None) -> str:
        return await self.send_op({"type": "step_complete", "step_id": step_id or self.step_id})

    async def step_change(self, to_step: str) -> str:
        return await self.send_op({"type": "step_change", "payload": {"to_step": to_step}})

    async def set_presence(self, cursor: tuple[float, float] | None, tool: str | None = None,
                           status: str | None = None) -> None:  # fmt: skip
        """Send now if the last update is old enough, else the latest goes at the next slot."""
        payload = {"cursor": list(cursor) if cursor else None, "tool": tool, "status": status}
        if time.monotonic() - self._presence_sent_at >= self.presence_interval_s:
            await self._send_presence(payload)
        else:
            self._presence_next = payload

    async def _send_presence(self, payload: dict[str, Any]) -> None:
        self._presence_sent_at = time.monotonic()
        await self._send_quietly({"type": "presence", "payload": payload})

    async def _heartbeat(self) -> None:
        """A ping every heartbeat_s keeps the connection alive and proves it is not behind."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.connected.is_set():
                await self.ping()

    async def ping(self) -> None:
        await self._send_quietly({"type": "ping", "t": time.time()})

    # ---- waiting --------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until `predicate()` holds after some frame; TimeoutError otherwise."""

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(until(), timeout_s)

    async def wait_confirmed(self, op_id: str, timeout_s: float = 10.0) -> int:
        await self.wait_for(lambda: op_id in self.confirmed, timeout_s)
        return self.confirmed[op_id]

    async def wait_seq(self, seq: int, timeout_s: float = 10.0) -> None:
        await self.wait_for(lambda: (self.last_seq or 0) >= seq, timeout_s)

    def visible_strokes(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.strokes.items() if not v["deleted"]}


class InkstepApi:
    """The REST calls a participant needs before connecting."""

    def __init__(self, base_url: str, user_token: str) -> None:
        import httpx

        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {user_token}"}, timeout=30
        )

    async def __aenter__(self) -> InkstepApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def create_session(self, lesson_id: str) -> dict[str, Any]:
        response = await self.http.post("/v1/sessions", json={"lesson_id": lesson_id})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def join(self, session_id: str, role: str = "student") -> tuple[str, str]:
        """A session token and the WebSocket URL to use it on."""
        response = await self.http.post(f"/v1/sessions/{session_id}/join", json={"role": role})
        response.raise_for_status()
        body = response.json()
        return body["ws_url"], body["token"]
