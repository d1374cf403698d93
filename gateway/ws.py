"""The WebSocket endpoint `/v1/ws`: hello/welcome, resume, validation, and forwarding ops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from functools import partial
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from actors.runner import EncodedSnapshot
from gateway.connection import Connection, FellBehind, TokenBucket
from gateway.services import Services, SessionNotFound
from inkstep.protocol import (
    PROTOCOL_VERSION,
    FrameError,
    Hello,
    OrderedOp,
    Ping,
    PresenceMsg,
    error_frame,
    op_to_json,
    parse_client_frame,
)
from inkstep.store.database import SessionRow
from inkstep.store.errors import StoreError, StoreUnavailable
from inkstep.store.streams import SessionLog
from inkstep.tokens import SessionClaims, TokenError, verify_session_token

logger = logging.getLogger(__name__)
router = APIRouter()

CLOSE_BAD_HELLO = 4400
CLOSE_BAD_TOKEN = 4401
CLOSE_NO_SESSION = 4404
CLOSE_NO_HELLO = 4408
CLOSE_RATE_ABUSE = 4429
CLOSE_SERVER_ERROR = 1011
CLOSE_RESTARTING = 1012


class Refusal(Exception):
    """Ends the connection with a close code before it has joined."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


PATH = "/v1/ws"


@router.websocket(PATH)
async def websocket_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    if services.draining:
        await websocket.close(CLOSE_RESTARTING, "gateway restarting")
        return
    try:
        hello, claims, row = await _receive_hello(websocket, services)
    except Refusal as refusal:
        await websocket.close(refusal.code, refusal.reason)
        return
    except WebSocketDisconnect:
        return
    await Session(websocket, services, hello, claims, row).run()


async def _receive_hello(
    websocket: WebSocket, services: Services
) -> tuple[Hello, SessionClaims, SessionRow]:
    settings = services.settings
    try:
        text = await asyncio.wait_for(websocket.receive_text(), settings.auth_timeout_s)
    except TimeoutError:
        raise Refusal(CLOSE_NO_HELLO, "no hello in time") from None
    except KeyError:
        raise Refusal(CLOSE_BAD_HELLO, "hello must be a text frame") from None
    try:
        hello = parse_client_frame(text)
    except FrameError as exc:
        raise Refusal(CLOSE_BAD_HELLO, exc.message[:120]) from None
    if not isinstance(hello, Hello):
        raise Refusal(CLOSE_BAD_HELLO, "the first frame must be hello")
    try:
        claims = verify_session_token(settings, hello.token)
    except TokenError as exc:
        raise Refusal(CLOSE_BAD_TOKEN, str(exc)[:120]) from None
    try:
        row = await services.session(claims.session_id)
    except SessionNotFound:
        raise Refusal(CLOSE_NO_SESSION, "no such session") from None
    return hello, claims, row


class Session:
    """One joined client: catch-up, then a receive loop and a send loop."""

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        hello: Hello,
        claims: SessionClaims,
        row: SessionRow,
    ) -> None:
        self.websocket = websocket
        self.services = services
        self.settings = services.settings
        self.hello = hello
        self.claims = claims
        self.row = row  # the session as read at hello
        self.connection = Connection(
            websocket, claims.session_id, claims.user_id, claims.role,
            services.settings.send_queue_frames, services.gateway_id,
        )  # fmt: skip
        self.bucket = TokenBucket(self.settings.ops_per_second, self.settings.ops_burst)
        self.refused_in_a_row = 0
        self.last_frame_at = time.monotonic()
        self._op_envelope: str | None = None

    async def run(self) -> None:
        services, connection = self.services, self.connection
        assert services.hub is not None and services.presence is not None
        log = SessionLog(services.hub.redis, connection.session_id)
        services.metrics.inc("inkstep_ws_connections")
        try:
            actor = await services.actor(connection.session_id, self.row)
            await services.hub.subscribe(connection)
            await self._welcome_and_catch_up(actor, log)
            await services.hub.write_inbox(connection.session_id, self._membership("join"))
            await services.presence.add(connection)
        except (StoreError, SessionNotFound) as exc:
            logger.warning("join failed: %s", exc, extra={"session_id": connection.session_id})
            services.hub.unsubscribe(connection)
            services.metrics.inc("inkstep_ws_connections", -1)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close(CLOSE_SERVER_ERROR, "session unavailable")
            return
        sender = asyncio.create_task(self._send(log))
        try:
            await self._receive()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._leave()

    async def _send(self, log: SessionLog) -> None:
        try:
            await self.connection.send_loop(log)
        except FellBehind:
            self.services.metrics.inc("inkstep_closed_too_slow_total")
            self.connection.request_close(4409, "fell too far behind; resume with last_seq")
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.connection.request_close(1006)

    async def _leave(self) -> None:
        services, connection = self.services, self.connection
        assert services.hub is not None and services.presence is not None
        services.metrics.inc("inkstep_ws_connections", -1)
        services.hub.unsubscribe(connection)
        await services.presence.remove(connection)
        services.presence.forget(connection)
        try:
            await services.hub.write_inbox(connection.session_id, self._membership("leave"))
        except StoreError:
            logger.warning("could not record a leave", extra={"session_id": connection.session_id})
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close()

    def _op_message(self, op: OrderedOp) -> str:
        """The inbox message for an op, as JSON text: the envelope is encoded once per
        connection and the op by pydantic, since this runs for every op."""
        if self._op_envelope is None:
            c = self.connection
            envelope = json.dumps({"kind": "op", "user_id": c.user_id, "role": c.role,
                                   "connection": c.id, "gateway": self.services.gateway_id,
                                   "op": None}, separators=(",", ":"))  # fmt: skip
            self._op_envelope = envelope.removesuffix("null}")
        return f"{self._op_envelope}{op_to_json(op)}}}"

    def _membership(self, kind: str) -> dict[str, Any]:
        c = self.connection
        return {"kind": kind, "user_id": c.user_id, "role": c.role, "connection": c.id,
                "gateway": self.services.gateway_id}  # fmt: skip

    async def _welcome_and_catch_up(self, actor: Any, log: SessionLog) -> None:
        connection, last_seq = self.connection, self.hello.last_seq
        resume = "snapshot"
        tail: list[str] = []
        if last_seq is not None:
            current = await log.last_seq()
            if 0 <= current - last_seq <= self.settings.resume_tail_max_events:
                missed = await log.whole_tail(last_seq, upto=current)
                if missed is not None:
                    resume, tail = "tail", missed
        snapshot: EncodedSnapshot | None = None
        if resume == "snapshot":
            snapshot = await self.services.snapshot(connection.session_id, actor)
        if snapshot is not None:
            lesson_id, step_id = self.row.lesson_id, snapshot.step_id
        else:  # the step as the session's record has it now
            session = await self.services.session(connection.session_id)
            lesson_id, step_id = session.lesson_id, session.step_id
        welcome = {
            "type": "welcome", "session_id": connection.session_id,
            "user_id": connection.user_id, "role": connection.role,
            "protocol": PROTOCOL_VERSION, "server_time": int(time.time() * 1000),
            "resume": resume, "lesson_id": lesson_id, "step_id": step_id,
        }  # fmt: skip
        await self.websocket.send_text(json.dumps(welcome))
        if snapshot is not None:
            await self.websocket.send_text(snapshot.text())
            connection.next_seq = snapshot.seq + 1
        else:
            assert last_seq is not None
            for raw in tail:
                await self.websocket.send_text(raw)
            connection.next_seq = last_seq + 1 + len(tail)

    async def _receive(self) -> None:
        watchdog = asyncio.create_task(self._close_when_idle())
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                self.last_frame_at = time.monotonic()
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                await self._handle_frame(text)
        finally:
            watchdog.cancel()

    async def _close_when_idle(self) -> None:
        """A client that sent nothing for idle_timeout_s is closed (a watchdog, not a
        timeout per receive, keeps the hot path free of extra tasks)."""
        idle_s = self.settings.idle_timeout_s
        while True:
            await asyncio.sleep(min(idle_s / 4, 5.0))
            if time.monotonic() - self.last_frame_at > idle_s:
                self.connection.request_close(1000, "idle")
                return

    async def _handle_frame(self, text: str) -> None:
        services, connection = self.services, self.connection
        services.metrics.inc("inkstep_ws_frames_in_total")
        try:
            frame = parse_client_frame(text)
            if isinstance(frame, Ping):
                # Every event up to last_seq is queued ahead of this pong: a client that has
                # applied less when it arrives has missed something and must resume.
                assert services.hub is not None
                last_seq = services.hub.seen_seq(connection.session_id)
                connection.send_frame({"type": "pong", "t": frame.t, "last_seq": last_seq})
                return
            if isinstance(frame, Hello):
                raise FrameError("invalid", "already joined: hello is only the first frame")
            if isinstance(frame, PresenceMsg):
                services.metrics.inc("inkstep_presence_total")
                assert services.presence is not None
                await services.presence.update(connection, frame.payload.model_dump(mode="json"))
                return
            if connection.role == "viewer":
                raise FrameError("forbidden", "viewers cannot change the session",
                                 frame.client_op_id)  # fmt: skip
            if not self.bucket.take():
                raise FrameError("rate_limited", "too many ops; slow down", frame.client_op_id)
            assert services.hub is not None
            # Not awaited: the next frame's op goes out behind this one without waiting for
            # its reply; a failure is answered when it comes.
            written = services.hub.submit_inbox(connection.session_id, self._op_message(frame))
            written.add_done_callback(partial(self._answer_failed_write, frame.client_op_id))
            services.metrics.inc("inkstep_ops_forwarded_total")
            self.refused_in_a_row = 0
        except FrameError as exc:
            services.metrics.inc("inkstep_ops_refused_total")
            connection.send_frame(exc.to_frame())
            self.refused_in_a_row += 1
            if self.refused_in_a_row > self.settings.abuse_refusals:
                connection.request_close(CLOSE_RATE_ABUSE, "too many refused frames")
        except StoreError as exc:
            connection.send_frame({"type": "error", "code": "unavailable", "message": str(exc),
                                   "client_op_id": None})  # fmt: skip

    def _answer_failed_write(self, client_op_id: str, written: asyncio.Future[Any]) -> None:
        if written.cancelled() or (exc := written.exception()) is None:
            return
        self.services.metrics.inc("inkstep_ops_refused_total")
        message = ("storage is unreachable; retry later" if isinstance(exc, StoreUnavailable)
                   else str(exc))  # fmt: skip
        self.connection.send_frame(error_frame("unavailable", message, client_op_id))
