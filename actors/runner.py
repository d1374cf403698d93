"""SessionRunner: feeds SessionCore from the session's inbox and persists what it decides.

It is the only writer of the session's log. An event counts as confirmed only once its
`XADD <seq>-0` succeeded; if a write fails, the in-memory state is rebuilt from what the log
holds and the unhandled inbox entries are read again (ops are idempotent by client_op_id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from actors.core import Accepted, Duplicate, Refused, ScoreRequest, SessionCore
from actors.projection import Projection
from inkstep.lessons import Lesson
from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import BlobStore
from inkstep.store.database import Database
from inkstep.store.errors import StoreError
from inkstep.store.streams import (
    SessionLog,
    connect,
    cursor_key,
    decode_message,
    encode_message,
    guarded,
    inbox_key,
    log_key,
    replies_key,
)

logger = logging.getLogger(__name__)

ScoreFn = Callable[[Lesson, ScoreRequest], Awaitable[dict[str, Any]]]
ExitFn = Callable[[], None]


def now_ms() -> int:
    return int(time.time() * 1000)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class SessionRunner:
    """The I/O shell around one SessionCore: inbox in, log and replies out, checkpoints."""

    def __init__(
        self,
        session_id: str,
        lesson: Lesson,
        settings: Settings,
        blobs: BlobStore,
        score: ScoreFn,
        on_idle_exit: ExitFn,
        db: Database | None = None,
    ) -> None:
        self.session_id = session_id
        self.lesson = lesson
        self.settings = settings
        self.blobs = blobs
        self.score = score
        self.on_idle_exit = on_idle_exit
        self.db = db
        self.projection = Projection(db, session_id) if db is not None else None
        self.redis: aioredis.Redis = connect(settings.resolved_redis_url())
        self.core = SessionCore(session_id, lesson)
        self.cursor = "0-0"
        self.checkpoint_seq = 0
        self.checkpoint_at = time.monotonic()
        self.last_activity = time.monotonic()
        self._commit_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._scoring: set[asyncio.Task[None]] = set()
        self._extra_log = {"session_id": session_id}

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.rebuild()
        if self.projection is not None:
            self.projection.start()
            self.projection.add_scores(self.core.scores)
        self._task = asyncio.create_task(self._run(), name=f"session:{self.session_id}")

    async def stop(self, checkpoint: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._scoring):
            task.cancel()
        if checkpoint:
            try:
                await self.checkpoint()
            except StoreError:
                logger.warning("final checkpoint failed", extra=self._extra_log)
        if self.projection is not None:
            await self.projection.stop()
        await self.redis.aclose()

    async def rebuild(self) -> None:
        """State = newest checkpoint + archived segments after it + the log after that."""
        found = await asyncio.to_thread(archive.latest_checkpoint, self.blobs, self.session_id)
        core = SessionCore(self.session_id, self.lesson)
        if found is not None:
            core = SessionCore.import_state(found[1])
        self.checkpoint_seq = core.last_seq
        log = SessionLog(self.redis, self.session_id)
        first_in_stream = await log.first_seq()
        if first_in_stream > core.last_seq + 1:
            archived = await asyncio.to_thread(
                lambda: list(archive.read_segments(self.blobs, self.session_id, core.last_seq))
            )
            for raw in archived:
                event = json.loads(raw)
                if event["seq"] == core.last_seq + 1:
                    core.apply(event)
        for raw in await log.events_after(core.last_seq):
            core.apply(json.loads(raw))
        self.core = core
        stored = await guarded(self.redis.get(cursor_key(self.session_id)))
        self.cursor = stored.decode() if stored else "0-0"
        logger.info("session rebuilt at seq %s", core.last_seq, extra=self._extra_log)

    # ---- the loop -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff_s = 0.05
        while True:
            try:
                await self._step()
                backoff_s = 0.05
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                logger.warning("store error, rebuilding: %s", exc, extra=self._extra_log)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
                await self._try_rebuild()
            except Exception:
                logger.exception("session loop failed, rebuilding", extra=self._extra_log)
                await asyncio.sleep(backoff_s)
                await self._try_rebuild()

    async def _try_rebuild(self) -> None:
        try:
            async with self._commit_lock:
                await self.rebuild()
        except StoreError as exc:
            logger.warning("rebuild failed: %s", exc, extra=self._extra_log)

    async def _step(self) -> None:
        block_ms = 1000
        reply = await guarded(
            self.redis.xread(
                {inbox_key(self.session_id): self.cursor},
                count=self.settings.actor_batch_ops,
                block=block_ms,
            )
        )
        if reply:
            async with self._commit_lock:
                await self.handle(reply[0][1])
            self.last_activity = time.monotonic()
        await self._maybe_checkpoint()
        await self._maybe_exit_idle()

    async def handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Decide every entry in order, then write events, replies and the cursor at once."""
        events: list[dict[str, Any]] = []
        replies: list[tuple[str, dict[str, Any]]] = []
        requests: list[ScoreRequest] = []
        for _, fields in entries:
            message = decode_message(fields)
            self._decide(message, events, replies, requests)
        last_id = entries[-1][0].decode()
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(log_key(self.session_id), {"e": dumps(event)}, id=f"{event['seq']}-0")
        for gateway, frame in replies:
            pipe.xadd(replies_key(gateway), encode_message(frame), maxlen=10_000, approximate=True)
        pipe.set(cursor_key(self.session_id), last_id)
        await guarded(pipe.execute())
        self.cursor = last_id
        if self.projection is not None:
            self.projection.add(events)
        for request in requests:
            self._start_scoring(request)

    def _decide(
        self,
        message: dict[str, Any],
        events: list[dict[str, Any]],
        replies: list[tuple[str, dict[str, Any]]],
        requests: list[ScoreRequest],
    ) -> None:
        kind, ts = message["kind"], now_ms()
        if kind == "op":
            self._decide_op(message, ts, events, replies, requests)
            return
        if kind == "join":
            event = self.core.decide_join(
                message["user_id"], message["role"], message["connection"], ts
            )
        elif kind == "leave":
            event = self.core.decide_leave(message["user_id"], message["connection"], ts)
        elif kind == "score":
            request = ScoreRequest(
                message["user_id"], message["step_id"], message["client_op_id"], []
            )
            for scored in self.core.decide_score(request, message["score"], ts):
                self.core.apply(scored)
                events.append(scored)
            return
        else:
            logger.warning("unknown inbox message %r", kind, extra=self._extra_log)
            return
        if event is not None:
            self.core.apply(event)
            events.append(event)

    def _decide_op(
        self,
        message: dict[str, Any],
        ts: int,
        events: list[dict[str, Any]],
        replies: list[tuple[str, dict[str, Any]]],
        requests: list[ScoreRequest],
    ) -> None:
        op = message["op"]
        decision = self.core.decide(message["user_id"], message["role"], op, ts)
        route = {"connection": message["connection"]}
        if isinstance(decision, Accepted):
            self.core.apply(decision.event)
            events.append(decision.event)
        elif isinstance(decision, Duplicate):
            frame = {"type": "ack", "client_op_id": decision.client_op_id,
                     "seq": decision.seq, "duplicate": True}  # fmt: skip
            replies.append((message["gateway"], {**route, "frame": frame}))
        elif isinstance(decision, Refused):
            frame = {"type": "error", "code": decision.code, "message": decision.message,
                     "client_op_id": decision.client_op_id}  # fmt: skip
            replies.append((message["gateway"], {**route, "frame": frame}))
        elif isinstance(decision, ScoreRequest):
            requests.append(decision)

    # ---- scoring --------------------------------------------------------------------

    def _start_scoring(self, request: ScoreRequest) -> None:
        task = asyncio.create_task(self._score(request))
        self._scoring.add(task)
        task.add_done_callback(self._scoring.discard)

    async def _score(self, request: ScoreRequest) -> None:
        """Score off the loop; the result goes back through the inbox so it is durable."""
        try:
            score = await self.score(self.lesson, request)
        except Exception:
            logger.exception("scoring failed", extra=self._extra_log)
            return
        message = {"kind": "score", "user_id": request.user_id, "step_id": request.step_id,
                   "client_op_id": request.client_op_id, "score": score}  # fmt: skip
        try:
            await guarded(self.redis.xadd(inbox_key(self.session_id), encode_message(message)))
        except StoreError:
            logger.exception("could not queue a score", extra=self._extra_log)

    # ---- checkpoints, archive, idle exit --------------------------------------------

    async def _maybe_checkpoint(self) -> None:
        behind = self.core.last_seq - self.checkpoint_seq
        due = time.monotonic() - self.checkpoint_at > self.settings.checkpoint_every_s
        if behind >= self.settings.checkpoint_every_events or (behind > 0 and due):
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Write the whole state, then archive and trim the log below what it covers."""
        seq, state = self.core.last_seq, self.core.export_state()
        if seq > self.checkpoint_seq:
            await asyncio.to_thread(
                archive.write_checkpoint, self.blobs, self.session_id, seq, state
            )
            self.checkpoint_seq = seq
        self.checkpoint_at = time.monotonic()
        await self._record_progress()
        await self._archive_and_trim(seq)
        await guarded(self.redis.xtrim(inbox_key(self.session_id), minid=self.cursor))

    async def _record_progress(self) -> None:
        if self.db is None:
            return
        try:
            await self.db.update_session_progress(
                self.session_id, self.core.step_id, self.core.last_seq
            )
        except StoreError as exc:
            logger.warning("could not record progress: %s", exc, extra=self._extra_log)

    async def _record_end(self) -> None:
        """The session ended (no one left, idle): mark it and index its replay."""
        if self.db is None:
            return
        segments = await asyncio.to_thread(archive.list_segments, self.blobs, self.session_id)
        try:
            await self.db.end_session(self.session_id)
            await self.db.record_replay(
                self.session_id, self.core.last_seq, self.core.last_seq, len(segments)
            )
        except StoreError as exc:
            logger.warning("could not record the session end: %s", exc, extra=self._extra_log)

    async def _archive_and_trim(self, checkpoint_seq: int) -> None:
        """Keep `stream_tail_events` in the stream for fast resumes; archive what goes."""
        trim_below = checkpoint_seq - self.settings.stream_tail_events
        log = SessionLog(self.redis, self.session_id)
        first = await log.first_seq()
        if first == 0 or trim_below <= first:
            return
        events = await log.events_after(first - 1, upto=trim_below)
        await asyncio.to_thread(archive.write_segment, self.blobs, self.session_id, events)
        await guarded(self.redis.xtrim(log_key(self.session_id), minid=f"{trim_below + 1}-0"))
        await asyncio.to_thread(archive.prune_checkpoints, self.blobs, self.session_id)

    async def _maybe_exit_idle(self) -> None:
        if self.core.participant_list() or self._scoring:
            return
        if time.monotonic() - self.last_activity < self.settings.idle_exit_s:
            return
        pending = await guarded(
            self.redis.xrange(inbox_key(self.session_id), f"({self.cursor}", "+", count=1)
        )
        if pending:
            return
        logger.info("session idle, checkpointing and exiting", extra=self._extra_log)
        await self.checkpoint()
        await self._record_end()
        if self.projection is not None:
            await self.projection.stop()
        self.on_idle_exit()

    # ---- reads ----------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """The state after the last confirmed event (never one still being written)."""
        async with self._commit_lock:
            return self.core.snapshot()
