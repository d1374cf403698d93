"""SessionRunner: feeds SessionCore from the session's inbox and persists what it decides.

It is the only writer of the session's log. An event counts as confirmed only once its
`XADD <seq>-0` succeeded; if a write fails, the in-memory state is rebuilt from what the log
holds and the unhandled inbox entries are read again (ops are idempotent by client_op_id).

The per-op path (read the inbox, decide, write the log) is a plain loop on a thread of its
own with a blocking Redis client: measured here, each Redis round trip costs the asyncio
client more than twice the CPU. What is not per op — Postgres rows, scoring, the actor's
calls — stays on the actor's asyncio loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from actors.core import Accepted, Duplicate, Refused, ScoreRequest, SessionCore, pack_state
from actors.pacing import CHECKPOINT_CPU_SHARE, Pacer
from actors.projection import Projection, projected
from actors.snapshot_frame import encode_snapshot
from inkstep.lessons import Lesson
from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import BlobStore
from inkstep.store.errors import StoreError
from inkstep.store.inbox_link import InboxLink
from inkstep.store.resp_socket import Command
from inkstep.store.streams import (
    BlockingSessionLog,
    connect_blocking,
    cursor_key,
    decode_message,
    encode_message,
    gateway_alive_key,
    gateway_of,
    inbox_key,
    log_key,
    replies_key,
    scoring_key,
    store_errors,
)

if TYPE_CHECKING:
    from inkstep.store.database import Database

logger = logging.getLogger(__name__)

ScoreFn = Callable[[Lesson, ScoreRequest], Awaitable[dict[str, Any]]]
ExitFn = Callable[[], None]

# How long one inbox read waits for ops; also how soon the loop notices a stop.
READ_BLOCK_MS = 500
# Waiting on the actor's loop (Postgres rows at exit) never holds the session for longer.
LOOP_CALL_TIMEOUT_S = 10.0
# The Doc follows the mirror this many events at a time, on its own thread: ~40 µs an event
# whatever the chunk, so small chunks cost no more. Left for the checkpoint, 2000 events were
# one burst of ~120 ms in every session that checkpointed.
DOC_SYNC_EVENTS = 20


@dataclass(frozen=True)
class EncodedSnapshot:
    """A `session_snapshot` frame as UTF-8 JSON, with what the gateway needs to know of it.

    The JSON's bytes travel as a uint8 array over them (no copy made): Ray hands an array's
    buffer over out of band, the reader's view mapping the object store. A 6.5 MB frame took
    7-9 ms a call that way against 14-21 ms as bytes (and ~3 times that as str), measured
    with a bare actor here."""

    seq: int
    step_id: str
    frame: npt.NDArray[np.uint8]

    @classmethod
    def of(cls, seq: int, step_id: str, frame: bytes) -> EncodedSnapshot:
        return cls(seq, step_id, np.frombuffer(frame, dtype=np.uint8))

    def text(self) -> str:
        """The frame as the text a WebSocket sends (one copy, from the array's buffer)."""
        return str(self.frame.data, "utf-8")


@dataclass
class BatchOutcome:
    """What one inbox batch decided; written to Redis in one pipeline."""

    events: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    score_requests: list[ScoreRequest] = field(default_factory=list)
    scores_done: list[bytes] = field(default_factory=list)  # fields of scoring_key to clear


def _pending_score_field(user_id: str, client_op_id: str) -> bytes:
    return orjson.dumps([user_id, client_op_id])


def _pending_score(request: ScoreRequest) -> tuple[bytes, bytes]:
    """A step completion being scored, as a field and value of the session's scoring hash."""
    value = {"user_id": request.user_id, "step_id": request.step_id,
             "client_op_id": request.client_op_id,
             "stroke_ids": [s["stroke_id"] for s in request.strokes]}  # fmt: skip
    return _pending_score_field(request.user_id, request.client_op_id), orjson.dumps(value)


def now_ms() -> int:
    return int(time.time() * 1000)


def checkpoint_cadence(session_id: str) -> float:
    """The share (0.75 to 1) of the configured checkpoint interval this session uses.

    Sessions started together (a class, a restart of every actor) and fed at the same rate
    would otherwise all checkpoint at the same moment, every time: measured with 10 sessions,
    their bursts stalled every op of the machine for ~2 s. The share is fixed per session, so
    a restart keeps it.
    """
    return 0.75 + 0.25 * zlib.crc32(session_id.encode()) / 2**32


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
        open_db: Callable[[], Database] | None = None,
        doc_thread: concurrent.futures.ThreadPoolExecutor | None = None,
    ) -> None:
        self.session_id = session_id
        self.lesson = lesson
        self.settings = settings
        self.blobs = blobs
        self.score = score
        self.on_idle_exit = on_idle_exit
        self.projection = Projection(open_db, session_id) if open_db is not None else None
        redis_url = settings.resolved_redis_url()
        self.redis = connect_blocking(redis_url)
        self.log = BlockingSessionLog(self.redis, session_id)
        self.link = InboxLink(redis_url, session_id, settings.actor_batch_ops, READ_BLOCK_MS)
        self.core = SessionCore(session_id, lesson)
        self.cursor = "0-0"
        self.checkpoint_seq = 0
        self.checkpoint_at = time.monotonic()
        cadence = checkpoint_cadence(session_id)
        self.checkpoint_every_events = max(1, round(settings.checkpoint_every_events * cadence))
        self.checkpoint_every_s = settings.checkpoint_every_s * cadence
        self.last_activity = time.monotonic()
        self.gateways_checked_at = time.monotonic()
        self.gateways_missing: set[str] = set()
        # Held while the state changes, so reads from the actor's calls see whole batches.
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scoring: set[concurrent.futures.Future[None]] = set()
        self._snapshot: EncodedSnapshot | None = None
        # Everything that touches the Yjs Doc runs here, one job at a time and in order, so
        # the op path never waits for it (a checkpoint of 2000 events costs ~0.4 s of Doc).
        # A host passes the one thread its sessions share (one GIL: more would only contend).
        self._owns_doc_thread = doc_thread is None
        self._doc_thread = doc_thread or concurrent.futures.ThreadPoolExecutor(
            1, f"doc:{session_id}"
        )
        self._checkpointing: concurrent.futures.Future[None] | None = None
        self._doc_syncing: concurrent.futures.Future[None] | None = None
        self._extra_log = {"session_id": session_id}
        self._collected = (BatchOutcome(), self.cursor)  # the batch `confirm` confirms

    # ---- lifecycle (called on the actor's loop) -------------------------------------

    async def start(self, own_thread: bool = True) -> None:
        """Rebuild, then serve: on a thread of its own, or (not `own_thread`) fed by a host's
        loop through `collect`, `confirm` and `keep_up`."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.rebuild)
        await asyncio.to_thread(self._resume_scoring)
        if self.projection is not None:
            self.projection.start()
            self.projection.add_scores(self.core.scores)
        if not own_thread:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"session:{self.session_id}", daemon=True
        )
        self._thread.start()

    async def stop(self, checkpoint: bool = True) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        for future in list(self._scoring):
            future.cancel()
        if checkpoint:
            try:
                await asyncio.to_thread(self.checkpoint_now)
            except StoreError:
                logger.warning("final checkpoint failed", extra=self._extra_log)
            await self._update_progress(self.core.step_id, self.core.last_seq)
        if self._owns_doc_thread:
            self._doc_thread.shutdown(wait=True)
        else:  # what this session still has queued there
            done = self._doc_thread.submit(lambda: None)
            await asyncio.wrap_future(done)
        if self.projection is not None:
            await self.projection.stop()
        self.redis.close()

    # ---- reads and checkpoints for the actor's calls (any thread) -------------------

    async def snapshot(self) -> EncodedSnapshot:
        """The state after the last confirmed event (never one still being written)."""
        return await asyncio.to_thread(self._locked, self._encoded_snapshot)

    def _encoded_snapshot(self) -> EncodedSnapshot:
        # Late joiners of a busy session often arrive together: encode once per seq. The
        # gateway forwards the text as is, so a big session never crosses Ray as objects.
        if self._snapshot is None or self._snapshot.seq != self.core.last_seq:
            snapshot = self.core.snapshot()
            frame = encode_snapshot(snapshot, self.core.strokes_json())
            self._snapshot = EncodedSnapshot.of(snapshot["seq"], snapshot["step_id"], frame)
        return self._snapshot

    async def export_doc(self) -> bytes:
        """The session as one Yjs update, after the last confirmed event."""
        core, backlog = await asyncio.to_thread(self._locked, self._take_doc_backlog)
        return await asyncio.wrap_future(self._doc_thread.submit(core.doc_update_with, backlog))

    def _take_doc_backlog(self) -> tuple[SessionCore, list[dict[str, Any]]]:
        return self.core, self.core.take_doc_backlog()

    def checkpoint_now(self) -> int:
        """Checkpoint between two batches and wait for it; answers the seq it covers."""
        with self.lock:
            written = self.checkpoint()
        written.result()
        return self.checkpoint_seq

    def _locked(self, read: Callable[[], Any]) -> Any:
        with self.lock:
            return read()

    # ---- rebuild ----------------------------------------------------------------------

    def rebuild(self) -> None:
        """State = newest checkpoint + archived segments after it + the log after that."""
        found = archive.latest_checkpoint(self.blobs, self.session_id)
        core = SessionCore(self.session_id, self.lesson)
        if found is not None:
            core = SessionCore.import_state(found[1])
        self.checkpoint_seq = core.last_seq
        if self.log.first_seq() > core.last_seq + 1:
            for raw in archive.read_segments(self.blobs, self.session_id, core.last_seq):
                event = orjson.loads(raw)
                if event["seq"] == core.last_seq + 1:
                    core.apply(event)
        for raw in self.log.events_after(core.last_seq):
            core.apply(orjson.loads(raw))
        self.core = core
        with store_errors():
            stored: Any = self.redis.get(cursor_key(self.session_id))
        self.cursor = stored.decode() if stored else "0-0"
        self.link.reset()
        logger.info("session rebuilt at seq %s", core.last_seq, extra=self._extra_log)

    # ---- the loop (its own thread) ----------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop_until_stopped()
        finally:
            self.link.reset()

    def _loop_until_stopped(self) -> None:
        backoff_s = 0.05
        while not self._stopping.is_set():
            try:
                if self._step():
                    return  # exited for idleness
                backoff_s = 0.05
            except StoreError as exc:
                logger.warning("store error, rebuilding: %s", exc, extra=self._extra_log)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
                self.try_rebuild()
            except Exception:
                logger.exception("session loop failed, rebuilding", extra=self._extra_log)
                self._stopping.wait(backoff_s)
                self.try_rebuild()

    def try_rebuild(self) -> bool:
        # A checkpoint still running on the Doc thread archives and trims the log: a rebuild
        # reading the log meanwhile could find events gone between two of its reads.
        if self._checkpointing is not None:
            concurrent.futures.wait([self._checkpointing])
        try:
            with self.lock:
                self.rebuild()
            return True
        except StoreError as exc:
            logger.warning("rebuild failed: %s", exc, extra=self._extra_log)
            return False

    def _step(self) -> bool:
        """Handle one batch from the inbox; answers whether the session exited for idleness."""
        entries = self.link.read(self.cursor)
        if entries:
            with self.lock:
                self.handle(entries)
        self.keep_up()
        return self._maybe_exit_idle()

    def keep_up(self) -> None:
        """Between batches: a checkpoint when one is due, leaves for lost gateways."""
        self._maybe_checkpoint()
        self._maybe_release_lost_connections()

    def handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Decide every entry in order, then write events, replies and the cursor at once."""
        writes, last_id = self.collect(entries)
        # Confirmed once these replies are in; the next inbox read goes out with them.
        self.link.write(writes, then_read_from=last_id)
        self.confirm()

    def collect(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[list[Command], str]:
        """Decide every entry in order (the caller holds the lock); the writes that confirm
        them and the id of the last entry. `confirm` follows once the writes succeeded."""
        out = BatchOutcome()
        for _, fields in entries:
            self._decide(decode_message(fields), out)
        last_id = entries[-1][0].decode()
        log, scoring = log_key(self.session_id), scoring_key(self.session_id)
        writes: list[Command] = [
            ("XADD", log, f"{event['seq']}-0", "e", orjson.dumps(event)) for event in out.events
        ]
        for gateway, frame in out.replies:
            writes.append(("XADD", replies_key(gateway), "MAXLEN", "~", 10_000, "*",
                           "m", orjson.dumps(frame)))  # fmt: skip
        for request in out.score_requests:
            writes.append(("HSET", scoring, *_pending_score(request)))
        if out.scores_done:
            writes.append(("HDEL", scoring, *out.scores_done))
        writes.append(("SET", cursor_key(self.session_id), last_id))
        self._collected = (out, last_id)
        return writes, last_id

    def confirm(self) -> None:
        """What follows a batch whose writes succeeded: its events are confirmed."""
        out, self.cursor = self._collected
        self.last_activity = time.monotonic()
        if self.projection is not None and (rows := projected(out.events)):
            self._on_loop(self.projection.add, rows)
        for request in out.score_requests:
            self._start_scoring(request)
        self._maybe_sync_doc()

    def _decide(self, message: dict[str, Any], out: BatchOutcome) -> None:
        kind, ts = message["kind"], now_ms()
        if kind == "op":
            self._decide_op(message, ts, out)
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
                out.events.append(scored)
            out.scores_done.append(_pending_score_field(request.user_id, request.client_op_id))
            return
        else:
            logger.warning("unknown inbox message %r", kind, extra=self._extra_log)
            return
        if event is not None:
            self.core.apply(event)
            out.events.append(event)

    def _decide_op(self, message: dict[str, Any], ts: int, out: BatchOutcome) -> None:
        op = message["op"]
        decision = self.core.decide(message["user_id"], message["role"], op, ts)
        route = {"connection": message["connection"]}
        if isinstance(decision, Accepted):
            self.core.apply(decision.event)
            out.events.append(decision.event)
        elif isinstance(decision, Duplicate):
            frame = {"type": "ack", "client_op_id": decision.client_op_id,
                     "seq": decision.seq, "duplicate": True}  # fmt: skip
            out.replies.append((message["gateway"], {**route, "frame": frame}))
        elif isinstance(decision, Refused):
            frame = {"type": "error", "code": decision.code, "message": decision.message,
                     "client_op_id": decision.client_op_id}  # fmt: skip
            out.replies.append((message["gateway"], {**route, "frame": frame}))
        elif isinstance(decision, ScoreRequest):
            out.score_requests.append(decision)

    def _maybe_release_lost_connections(self) -> None:
        """Connections whose gateway is gone (killed, its machine lost) never say goodbye:
        leave for them, through the inbox like any leave, so the participant list shows who
        is still here. Checked twice per gateway expiry; a gateway counts as gone when its key
        is missing at two checks in a row (after Redis itself was down for longer than the
        expiry, every key is missing until the gateways renew them)."""
        if time.monotonic() - self.gateways_checked_at < self.settings.gateway_ttl_s / 2:
            return
        self.gateways_checked_at = time.monotonic()
        by_gateway: dict[str, list[tuple[str, str]]] = {}
        for participant in self.core.participants.values():
            for connection in participant.connections:
                if (gateway := gateway_of(connection)) is not None:
                    by_gateway.setdefault(gateway, []).append((participant.user_id, connection))
        if not by_gateway:
            return
        gateways = list(by_gateway)
        with store_errors():
            alive = self.redis.pipeline(transaction=False)
            for gateway in gateways:
                alive.exists(gateway_alive_key(gateway))
            missing = {g for g, present in zip(gateways, alive.execute(), strict=True)
                       if not present}  # fmt: skip
            gone, self.gateways_missing = missing & self.gateways_missing, missing
            if not gone:
                return
            leaves = self.redis.pipeline(transaction=False)
            for gateway in gone:
                for user_id, connection in by_gateway[gateway]:
                    message = {"kind": "leave", "user_id": user_id, "connection": connection,
                               "gateway": gateway}  # fmt: skip
                    leaves.xadd(inbox_key(self.session_id), encode_message(message))
            leaves.execute()
        logger.info("gateways gone: %s; their connections leave", gone, extra=self._extra_log)

    def _resume_scoring(self) -> None:
        """Score again what a previous run of the session was scoring when it stopped: the
        completion was read from the inbox, so nothing else would ever answer it."""
        with store_errors():
            pending: Any = self.redis.hgetall(scoring_key(self.session_id))
        for field_name, value in pending.items():
            asked = orjson.loads(value)
            if (asked["user_id"], asked["client_op_id"]) in self.core.applied_ops:
                with store_errors():
                    self.redis.hdel(scoring_key(self.session_id), field_name)
                continue
            strokes = [self.core.strokes[i] for i in asked["stroke_ids"] if i in self.core.strokes]
            request = ScoreRequest(asked["user_id"], asked["step_id"], asked["client_op_id"],
                                   strokes)  # fmt: skip
            logger.info("scoring %s again after a restart", request.client_op_id,
                        extra=self._extra_log)  # fmt: skip
            self._start_scoring(request)

    # ---- the actor's loop, from the session thread ------------------------------------

    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback, *args)

    def _run_on_loop(self, work: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    # ---- scoring --------------------------------------------------------------------

    def _start_scoring(self, request: ScoreRequest) -> None:
        future = self._run_on_loop(self._score(request))
        self._scoring.add(future)
        future.add_done_callback(self._scoring.discard)

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
            await asyncio.to_thread(self._queue_message, message)
        except StoreError:
            logger.exception("could not queue a score", extra=self._extra_log)

    def _queue_message(self, message: dict[str, Any]) -> None:
        with store_errors():
            self.redis.xadd(inbox_key(self.session_id), encode_message(message))

    # ---- checkpoints, archive, idle exit --------------------------------------------

    def _maybe_sync_doc(self) -> None:
        """Hand the Doc its next DOC_SYNC_EVENTS events once they are there and it is done
        with the last ones (the caller holds the lock)."""
        if self.core.doc_backlog_size() < DOC_SYNC_EVENTS:
            return
        if self._doc_syncing is not None and not self._doc_syncing.done():
            return
        core = self.core
        self._doc_syncing = self._doc_thread.submit(core.apply_doc_backlog, core.take_doc_backlog())
        self._doc_syncing.add_done_callback(self._log_doc_failure)

    def _log_doc_failure(self, done: concurrent.futures.Future[None]) -> None:
        if not done.cancelled() and (error := done.exception()) is not None:
            logger.error("the Doc could not take events: %r", error, extra=self._extra_log)

    def _maybe_checkpoint(self) -> None:
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        behind = self.core.last_seq - self.checkpoint_seq
        due = time.monotonic() - self.checkpoint_at > self.checkpoint_every_s
        if behind >= self.checkpoint_every_events or (behind > 0 and due):
            with self.lock:
                self._checkpointing = self.checkpoint(paced=True)
            self._record_progress()

    def checkpoint(self, paced: bool = False) -> concurrent.futures.Future[None]:
        """Checkpoint the state as it is now (the caller holds the lock). The mirror is copied
        here; encoding it, the Doc, the write, then archiving and trimming the log below what
        the checkpoint covers, run on the Doc thread: `paced`, at most CHECKPOINT_CPU_SHARE of
        a core (the periodic ones, beside live ops), else flat out (at a stop)."""
        core, cursor = self.core, self.cursor
        mirror, backlog = core.export_parts()
        self.checkpoint_at = time.monotonic()
        rest = Pacer(CHECKPOINT_CPU_SHARE if paced else 1.0).rest  # a whole core: no rests
        return self._doc_thread.submit(
            self._write_checkpoint, core, core.last_seq, cursor, mirror, backlog, rest
        )

    def _write_checkpoint(
        self,
        core: SessionCore,
        seq: int,
        cursor: str,
        mirror: dict[str, Any],
        backlog: list[dict[str, Any]],
        rest: Callable[[], None],
    ) -> None:
        core.apply_doc_backlog(backlog)
        rest()
        doc_update = core.doc_update_with([])
        rest()
        state = pack_state(mirror, doc_update, rest)
        try:
            if seq > self.checkpoint_seq:
                archive.write_checkpoint(self.blobs, self.session_id, seq, state)
                self.checkpoint_seq = seq
            rest()
            self._archive_and_trim(seq, rest)
            with store_errors():
                self.redis.xtrim(inbox_key(self.session_id), minid=cursor)
        except StoreError as exc:
            logger.warning("checkpoint failed: %s", exc, extra=self._extra_log)
            raise

    def _record_progress(self) -> None:
        """Progress in Postgres, in the background: the checkpoint does not wait for it."""
        if self.projection is None or self._loop is None or self._loop.is_closed():
            return
        step_id, last_seq = self.core.step_id, self.core.last_seq
        self._run_on_loop(self._update_progress(step_id, last_seq))

    async def _update_progress(self, step_id: str, last_seq: int) -> None:
        if self.projection is None:
            return
        try:
            db = await self.projection.database()
            await db.update_session_progress(self.session_id, step_id, last_seq)
        except StoreError as exc:
            logger.warning("could not record progress: %s", exc, extra=self._extra_log)

    async def _record_end(self, last_seq: int) -> None:
        """The session ended (no one left, idle): mark it and index its replay."""
        if self.projection is None:
            return
        segments = await asyncio.to_thread(archive.list_segments, self.blobs, self.session_id)
        try:
            db = await self.projection.database()
            await db.end_session(self.session_id)
            await db.record_replay(self.session_id, last_seq, last_seq, len(segments))
        except StoreError as exc:
            logger.warning("could not record the session end: %s", exc, extra=self._extra_log)

    def _archive_and_trim(self, checkpoint_seq: int, rest: Callable[[], None]) -> None:
        """Keep `stream_tail_events` in the stream for fast resumes; archive what goes."""
        trim_below = checkpoint_seq - self.settings.stream_tail_events
        first = self.log.first_seq()
        if first == 0 or trim_below <= first:
            return
        events = self.log.numbered_events_after(first - 1, upto=trim_below, rest=rest)
        archive.write_numbered_segment(self.blobs, self.session_id, events, rest)
        with store_errors():
            self.redis.xtrim(log_key(self.session_id), minid=f"{trim_below + 1}-0")
        archive.prune_checkpoints(self.blobs, self.session_id)

    def is_idle(self) -> bool:
        """No one has been here for idle_exit_s, nothing is being scored or waits in the inbox."""
        if self.core.has_participants() or self._scoring:
            return False
        if time.monotonic() - self.last_activity < self.settings.idle_exit_s:
            return False
        with store_errors():
            pending = self.redis.xrange(inbox_key(self.session_id), f"({self.cursor}", "+", count=1)
        return not pending

    def _maybe_exit_idle(self) -> bool:
        """Exit when no one has been here for idle_exit_s; answers whether it did."""
        if not self.is_idle():
            return False
        logger.info("session idle, checkpointing and exiting", extra=self._extra_log)
        self.checkpoint_now()
        self._run_on_loop(self._end(self.core.last_seq)).result(LOOP_CALL_TIMEOUT_S)
        return True

    async def record_end(self, last_seq: int) -> None:
        """The session's record says where it ended, and its replay is indexed."""
        await self._update_progress(self.core.step_id, last_seq)
        await self._record_end(last_seq)

    async def _end(self, last_seq: int) -> None:
        """On the actor's loop: the last rows, then the actor leaves."""
        await self.record_end(last_seq)
        if self.projection is not None:
            await self.projection.stop()
        self.on_idle_exit()
