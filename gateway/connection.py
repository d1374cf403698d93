"""One client's WebSocket: a bounded send queue, in-order delivery by seq, a rate limit."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from inkstep.store.streams import SessionLog, connection_id

CLOSE_TOO_SLOW = 4409


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FellBehind(Exception):
    """The client did not read fast enough; it must resume by last_seq."""


class Connection:
    """Everything sent to one client goes through its queue, so frames never interleave.

    Ordered events carry their seq: older ones are dropped (already sent), and a gap is
    filled from the log before the newer event, so the client sees every seq exactly once.
    """

    def __init__(
        self,
        websocket: WebSocket,
        session_id: str,
        user_id: str,
        role: str,
        queue_frames: int,
        gateway_id: str,
    ) -> None:
        self.id = connection_id(gateway_id, uuid.uuid4().hex)
        self.websocket = websocket
        self.session_id = session_id
        self.user_id = user_id
        self.role = role
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=queue_frames)
        self.next_seq = 1
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    def deliver_event(self, seq: int, raw: str) -> None:
        self._put((seq, raw))

    def send_frame(self, frame: dict[str, Any]) -> None:
        self._put((0, json.dumps(frame, separators=(",", ":"))))

    def _put(self, item: tuple[int, str]) -> None:
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.request_close(CLOSE_TOO_SLOW, "fell too far behind; resume with last_seq")

    def request_close(self, code: int, reason: str = "") -> None:
        if not self.closed.is_set():
            self.close_code = code
            self.closed.set()
            asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code, reason)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass

    async def send_loop(self, log: SessionLog) -> None:
        """Drain the queue to the socket until the connection closes."""
        while not self.closed.is_set():
            seq, text = await self.queue.get()
            if seq == 0:
                await self.websocket.send_text(text)
                continue
            if seq < self.next_seq:
                continue
            if seq > self.next_seq:
                await self._fill_gap(log, seq)
            await self.websocket.send_text(text)
            self.next_seq = seq + 1

    async def _fill_gap(self, log: SessionLog, upto_seq: int) -> None:
        missing = await log.events_after(self.next_seq - 1, upto=upto_seq - 1)
        if len(missing) != upto_seq - self.next_seq:
            raise FellBehind(f"events {self.next_seq}..{upto_seq - 1} left the stream")
        for raw in missing:
            await self.websocket.send_text(raw)
        self.next_seq = upto_seq
