"""Sessions that share a process: a SessionHost actor carries many, with one inbox loop.

A session actor is a Ray worker process of its own: ~0.8% of a core when idle, and woken for
every op or two of its session. At 50 sessions x 4 clients x 20 Hz on a 2-core machine the
fifty actors took ~115% of the cores, where one process numbering the same ops into the same
logs took 8-13% (`bench fanout --sequenced`). With `session_hosts = N`, session `s` lives in
the named actor `sessions:<crc32(s) mod N>` instead: still one writer per session (only that
host may hold it, and Ray keeps one instance of a name), brought back by Ray after a crash
and rebuilt from checkpoint + log like a session actor. Its loop reads every hosted inbox in
one blocking XREAD and writes every session's events with the next read, in one send.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import ray

from actors.runner import READ_BLOCK_MS, EncodedSnapshot, SessionRunner
from actors.session_actor import _blob_store_env, _open_database, _tune_interpreter, score_with_ray
from inkstep.lessons import Lesson
from inkstep.settings import Settings
from inkstep.store.blob import blob_store_for
from inkstep.store.errors import StoreError
from inkstep.store.inbox_link import REPLY_TIMEOUT_S
from inkstep.store.resp_socket import Command, RespSocket
from inkstep.store.streams import connect_blocking, entry_fields, inbox_key, store_errors

logger = logging.getLogger(__name__)

# Checkpoints due, idle sessions, lost gateways: looked at this often, not at every batch.
KEEP_UP_EVERY_S = 0.05
WAKE_STREAM_ENTRIES = 100


def host_name(index: int) -> str:
    return f"sessions:{index}"


def host_index(session_id: str, hosts: int) -> int:
    """Where a session lives: every gateway must agree, so it is a hash, not a choice."""
    return zlib.crc32(session_id.encode()) % hosts


def registry_key(index: int) -> str:
    """The sessions a host carries, with their lessons: what it opens again after a crash."""
    return f"inkstep:host:{index}:sessions"


def wake_key(index: int) -> str:
    """Written when a session joins the host, so the blocking read starts reading its inbox."""
    return f"inkstep:host:{index}:wake"


class HostLoop:
    """The inbox loop of one host, on a thread of its own: each hosted session's batch is
    decided under that session's lock, and its writes go out with the next read."""

    def __init__(self, redis_url: str, wake: str, batch_ops: int,
                 on_idle: Callable[[str], None]) -> None:  # fmt: skip
        self._url, self._wake, self._count = redis_url, wake, batch_ops
        self._on_idle = on_idle
        self._lock = threading.Lock()  # guards _runners
        self._runners: dict[str, SessionRunner] = {}  # by inbox key
        self._reading_from: dict[str, str] = {}  # by inbox key: after the last batch decided
        self._wake_id = "0-0"
        self._socket: RespSocket | None = None
        self._writes: list[Command] = []  # the decided batches' writes, sent with the next read
        self._held: list[SessionRunner] = []  # whose batch those writes confirm (lock held)
        self._to_rebuild: set[str] = set()
        self._kept_up_at = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="host-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in hand is written (a read ends within READ_BLOCK_MS)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def add(self, runner: SessionRunner) -> None:
        """Start reading the session's inbox after its cursor (any thread)."""
        inbox = inbox_key(runner.session_id)
        with self._lock:
            self._runners[inbox] = runner
            self._reading_from[inbox] = runner.cursor
        try:
            with store_errors():
                runner.redis.xadd(self._wake, {"w": "1"}, maxlen=WAKE_STREAM_ENTRIES)
        except StoreError as exc:  # the next read, within READ_BLOCK_MS, includes it anyway
            logger.warning("could not wake the host loop: %s", exc)

    def remove(self, session_id: str) -> None:
        """Stop reading the session's inbox. A batch of it already decided is still written:
        take the session's lock after this to wait for that."""
        with self._lock:
            self._runners.pop(inbox_key(session_id), None)

    # ---- the loop (its own thread) --------------------------------------------------

    def _run(self) -> None:
        backoff_s = 0.05
        while not self._stopping.is_set():
            try:
                self._step()
                backoff_s = 0.05
            except Exception as exc:
                logger.warning("host loop failed, rebuilding its sessions in flight: %r", exc)
                self._drop_batch_in_hand()
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
        self._finish_batch_in_hand()
        if self._socket is not None:
            self._socket.close()

    def _step(self) -> None:
        self._rebuild_failed()
        with self._lock:
            hosted = dict(self._runners)
        streams = [self._wake, *hosted]
        ids = [self._wake_id, *(self._reading_from[inbox] for inbox in hosted)]
        read: Command = ("XREAD", "COUNT", self._count, "BLOCK", READ_BLOCK_MS,
                         "STREAMS", *streams, *ids)  # fmt: skip
        socket = self._open()
        with store_errors():
            socket.send([*self._writes, read])
            for _ in self._writes:
                socket.reply()
        self._writes = []
        self._confirm_held()
        self._keep_up(hosted)
        with store_errors():
            reply = socket.reply()
        # RESP3 answers a map of stream to entries, RESP2 a list of [stream, entries].
        for stream, flat_entries in reply.items() if isinstance(reply, dict) else reply or ():
            name = stream.decode()
            if name == self._wake:
                self._wake_id = flat_entries[-1][0].decode()
            elif (runner := hosted.get(name)) is not None:
                self._decide(name, runner, flat_entries)

    def _decide(self, inbox: str, runner: SessionRunner, flat_entries: list[Any]) -> None:
        entries = [(entry_id, entry_fields(flat)) for entry_id, flat in flat_entries]
        runner.lock.acquire()
        try:
            writes, last_id = runner.collect(entries)
        except BaseException:
            runner.lock.release()
            self._to_rebuild.add(runner.session_id)
            raise
        self._held.append(runner)
        self._writes.extend(writes)
        self._reading_from[inbox] = last_id

    def _confirm_held(self) -> None:
        while self._held:
            runner = self._held.pop()
            try:
                runner.confirm()
            finally:
                runner.lock.release()

    def _keep_up(self, hosted: dict[str, SessionRunner]) -> None:
        if time.monotonic() - self._kept_up_at < KEEP_UP_EVERY_S:
            return
        self._kept_up_at = time.monotonic()
        for runner in hosted.values():
            try:
                runner.keep_up()
                if runner.is_idle():
                    self._on_idle(runner.session_id)
            except StoreError as exc:
                logger.warning("could not keep up session %s: %s", runner.session_id, exc)

    def _drop_batch_in_hand(self) -> None:
        """The writes may or may not have reached the log: the sessions they were for rebuild
        from it (and read their inbox again from the cursor it holds)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._writes = []
        while self._held:
            runner = self._held.pop()
            runner.lock.release()
            self._to_rebuild.add(runner.session_id)

    def _finish_batch_in_hand(self) -> None:
        """At a stop: write what was decided, so nothing decided is left unconfirmed."""
        if not self._writes:
            return
        try:
            socket = self._open()
            with store_errors():
                socket.send(self._writes)
                for _ in self._writes:
                    socket.reply()
            self._writes = []
            self._confirm_held()
        except (StoreError, OSError) as exc:
            logger.warning("the last batch was not written (its ops stay in the inbox): %s", exc)
            self._drop_batch_in_hand()

    def _rebuild_failed(self) -> None:
        """Sessions whose batch was dropped hold events the log may not: rebuild each from
        the log before reading its inbox again."""
        for session_id in list(self._to_rebuild):
            inbox = inbox_key(session_id)
            with self._lock:
                runner = self._runners.get(inbox)
            if runner is not None:
                if not runner.try_rebuild():
                    raise StoreError(f"session {session_id} could not rebuild")
                self._reading_from[inbox] = runner.cursor
            self._to_rebuild.discard(session_id)

    def _open(self) -> RespSocket:
        if self._socket is None:
            with store_errors():
                self._socket = RespSocket(self._url, REPLY_TIMEOUT_S)
        return self._socket


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=64)  # type: ignore[call-overload]
class SessionHost:
    """Carries the sessions that hash to it; its methods are the once-per-join calls."""

    def __init__(self, index: int, settings_json: dict[str, Any], env: dict[str, str]) -> None:
        logging.basicConfig(level=logging.INFO)
        os.environ.update(env)  # this worker process is the host's alone
        _tune_interpreter()
        self.index = index
        self.settings = Settings.model_validate(settings_json)
        self.blobs = blob_store_for(self.settings)
        self.runners: dict[str, SessionRunner] = {}
        # An open or a close under way, by session: another waits for it to end.
        self.changing: dict[str, asyncio.Task[None]] = {}
        self.actor_loop: asyncio.AbstractEventLoop | None = None
        self.redis = connect_blocking(self.settings.resolved_redis_url())  # the registry's
        # The sessions' Doc updates and checkpoints, one job at a time (see SessionRunner).
        self.doc_thread = concurrent.futures.ThreadPoolExecutor(1, f"doc:host-{index}")
        self.loop = HostLoop(self.settings.resolved_redis_url(), wake_key(index),
                             self.settings.actor_batch_ops, self._idle)  # fmt: skip
        self.loop.start()
        # Open again, also after a crash restart, the sessions the registry says it carried.
        self._kickoff = ray.get_runtime_context().current_actor.reopen.remote()

    async def reopen(self) -> int:
        """Open every session the registry lists; answers how many it carries."""
        self.actor_loop = asyncio.get_running_loop()
        registered = await asyncio.to_thread(self._registered)
        opened = await asyncio.gather(
            *(self.open(sid, lesson) for sid, lesson in registered.items()), return_exceptions=True
        )
        for session_id, result in zip(registered, opened, strict=True):
            if isinstance(result, BaseException):
                logger.error("could not open session %s again: %r", session_id, result)
        return len(self.runners)

    async def open(self, session_id: str, lesson_json: dict[str, Any]) -> int:
        """Carry the session (rebuilt from storage) if it does not yet; its last seq."""
        self.actor_loop = asyncio.get_running_loop()
        while (task := self.changing.get(session_id)) is not None:
            await asyncio.shield(task)
        if (runner := self.runners.get(session_id)) is None:
            await asyncio.shield(self._begin(session_id, self._open(session_id, lesson_json)))
            runner = self.runners[session_id]
        return runner.core.last_seq

    async def snapshot(self, session_id: str, lesson_json: dict[str, Any]) -> EncodedSnapshot:
        await self.open(session_id, lesson_json)
        return await self.runners[session_id].snapshot()

    async def export_doc(self, session_id: str, lesson_json: dict[str, Any]) -> bytes:
        await self.open(session_id, lesson_json)
        return await self.runners[session_id].export_doc()

    async def checkpoint(self, session_id: str, lesson_json: dict[str, Any]) -> int:
        await self.open(session_id, lesson_json)
        return await asyncio.to_thread(self.runners[session_id].checkpoint_now)

    async def sessions(self) -> list[str]:
        return sorted(self.runners)

    async def pid(self) -> int:
        return os.getpid()

    async def shutdown(self) -> None:
        """Checkpoint every session and leave; the next join recreates the host."""
        await asyncio.to_thread(self.loop.stop)
        for runner in list(self.runners.values()):
            await runner.stop(checkpoint=True)
        with store_errors():
            await asyncio.to_thread(self._unregister, *self.runners)
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    # ---- opening and closing sessions (on the actor's loop) -------------------------

    def _begin(self, session_id: str, change: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start opening or closing the session; calls for it wait until that ends."""
        task = asyncio.create_task(change)
        self.changing[session_id] = task
        task.add_done_callback(functools.partial(self._ended, session_id))
        return task

    def _ended(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self.changing.get(session_id) is task:
            del self.changing[session_id]
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("session %s could not open or close: %r", session_id, error)

    async def _open(self, session_id: str, lesson_json: dict[str, Any]) -> None:
        runner = SessionRunner(
            session_id, Lesson.model_validate(lesson_json), self.settings, self.blobs,
            score_with_ray, _stays,
            functools.partial(_open_database, self.settings.resolved_database_url()),
            self.doc_thread,
        )  # fmt: skip
        await runner.start(own_thread=False)
        await asyncio.to_thread(self._register, session_id, lesson_json)
        self.runners[session_id] = runner
        await asyncio.to_thread(self.loop.add, runner)

    def _idle(self, session_id: str) -> None:
        """From the loop: the session looks idle (it may be reported more than once)."""
        if self.actor_loop is not None:
            self.actor_loop.call_soon_threadsafe(self._close_if_idle, session_id)

    def _close_if_idle(self, session_id: str) -> None:
        if session_id in self.changing or session_id not in self.runners:
            return
        self._begin(session_id, self._close(session_id))

    async def _close(self, session_id: str) -> None:
        """Checkpoint the session and stop carrying it, unless someone came meanwhile."""
        runner = self.runners[session_id]
        self.loop.remove(session_id)
        if not await asyncio.to_thread(_idle_after_its_batch, runner):
            await asyncio.to_thread(self.loop.add, runner)
            return
        logger.info("session %s idle: checkpointing and closing it", session_id)
        last_seq = await asyncio.to_thread(runner.checkpoint_now)  # waits for its batch too
        await runner.record_end(last_seq)
        await runner.stop(checkpoint=False)
        del self.runners[session_id]
        await asyncio.to_thread(self._unregister, session_id)

    # ---- the registry ---------------------------------------------------------------

    def _registered(self) -> dict[str, dict[str, Any]]:
        with store_errors():
            found: Any = self.redis.hgetall(registry_key(self.index))
        return {sid.decode(): orjson.loads(lesson) for sid, lesson in found.items()}

    def _register(self, session_id: str, lesson_json: dict[str, Any]) -> None:
        with store_errors():
            self.redis.hset(registry_key(self.index), session_id, orjson.dumps(lesson_json))

    def _unregister(self, *session_ids: str) -> None:
        if session_ids:
            with store_errors():
                self.redis.hdel(registry_key(self.index), *session_ids)


def _idle_after_its_batch(runner: SessionRunner) -> bool:
    """Whether the session is idle, once a batch of it the loop had in hand is confirmed (so
    its cursor is where the loop would read on from)."""
    with runner.lock:
        pass
    return runner.is_idle()


def _stays() -> None:
    """A hosted session does not end its process when idle: the host closes it."""


class HostedSession:
    """A session's calls on its host, in the form of a session actor's (`.ready.remote()`)."""

    def __init__(self, host: Any, session_id: str, lesson_json: dict[str, Any]) -> None:
        self.host, self.session_id, self.lesson_json = host, session_id, lesson_json

    @property
    def ready(self) -> _Call:
        return self._on_host("open")

    @property
    def snapshot(self) -> _Call:
        return self._on_host("snapshot")

    @property
    def export_doc(self) -> _Call:
        return self._on_host("export_doc")

    @property
    def checkpoint(self) -> _Call:
        return self._on_host("checkpoint")

    @property
    def pid(self) -> Any:
        return self.host.pid

    def _on_host(self, method: str) -> _Call:
        """The host's method of that name, for this session."""
        return _Call(getattr(self.host, method), self.session_id, self.lesson_json)


class _Call:
    def __init__(self, method: Any, *args: Any) -> None:
        self._method, self._args = method, args

    def remote(self) -> Any:
        return self._method.remote(*self._args)


def ensure_hosted_session(session_id: str, lesson: Lesson, settings: Settings) -> HostedSession:
    """The session's host, created on first use (get_if_exists makes this race-free)."""
    index = host_index(session_id, settings.session_hosts)
    host = SessionHost.options(  # type: ignore[attr-defined]
        name=host_name(index),
        namespace=settings.ray_namespace,
        get_if_exists=True,
        lifetime="detached",
    ).remote(index, settings.model_dump(mode="json"), _blob_store_env(settings))
    return HostedSession(host, session_id, lesson.to_json_dict())
