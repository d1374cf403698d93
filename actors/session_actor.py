"""The Ray actor that hosts one live session ("session:<id>"), and how gateways reach it.

Ray guarantees one instance of a named actor, so each session has a single writer without
locks; `max_restarts=-1` brings it back after a crash, rebuilt from checkpoint + log. Ops
never travel as Ray calls (see DESIGN.md): gateways call the actor once per join.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import AsyncioActorExit

from actors.core import ScoreRequest
from actors.runner import EncodedSnapshot, SessionRunner
from inkstep.lessons import Lesson
from inkstep.settings import Settings
from inkstep.store.blob import blob_store_for

if TYPE_CHECKING:
    from inkstep.store.database import Database

logger = logging.getLogger(__name__)


def actor_name(session_id: str) -> str:
    return f"session:{session_id}"


async def score_with_ray(lesson: Lesson, request: ScoreRequest) -> dict[str, Any]:
    """Score a step on Ray, so many sessions score in parallel across the cluster."""
    from scoring.tasks import score_remote

    step = lesson.step(request.step_id)
    if step is None:
        raise ValueError(f"unknown step {request.step_id!r}")
    # JSON text (the worker validates each distinct text once); score_remote packs the
    # strokes into arrays, which serialise faster than the session's stroke dicts.
    result: dict[str, Any] = await score_remote(
        step.model_dump_json(by_alias=True),
        lesson.canvas.model_dump_json(),
        request.strokes,
        _scoring_params_json(),
    )
    return result


@functools.cache
def _scoring_params_json() -> str:
    """The scoring params as JSON text, read once per actor process (not per completion)."""
    from scoring import load_params

    path = Settings().scoring_params
    return json.dumps(load_params(path).model_dump(mode="json"))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=64)  # type: ignore[call-overload]
class SessionActor:
    """Hosts a SessionRunner; its methods are the once-per-join calls gateways make."""

    def __init__(
        self,
        session_id: str,
        lesson_json: dict[str, Any],
        settings_json: dict[str, Any],
        env: dict[str, str],
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        os.environ.update(env)  # this worker process is the actor's alone
        _tune_interpreter()
        settings = Settings.model_validate(settings_json)
        lesson = Lesson.model_validate(lesson_json)
        blobs = blob_store_for(settings)
        self.runner = SessionRunner(
            session_id, lesson, settings, blobs, score_with_ray, self._exit_idle,
            functools.partial(_open_database, settings.resolved_database_url()),
        )  # fmt: skip
        self._started: asyncio.Task[None] | None = None
        # Start serving at once, also after a crash restart, rather than on the first call
        # from a gateway: the call is queued until __init__ returns.
        self._kickoff = ray.get_runtime_context().current_actor.ready.remote()

    async def _ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self.runner.start())
        await asyncio.shield(self._started)

    async def ready(self) -> int:
        """Start the session loop if needed; answers the last confirmed seq."""
        await self._ensure_started()
        return self.runner.core.last_seq

    async def snapshot(self) -> EncodedSnapshot:
        await self._ensure_started()
        return await self.runner.snapshot()

    async def export_doc(self) -> bytes:
        await self._ensure_started()
        return await self.runner.export_doc()

    async def pid(self) -> int:
        return os.getpid()

    async def interpreter(self) -> dict[str, Any]:
        """What this actor's interpreter runs with (see `_tune_interpreter`)."""
        return {"gil_switch_interval_s": sys.getswitchinterval(),
                "gc_threshold": list(gc.get_threshold())}  # fmt: skip

    async def checkpoint(self) -> int:
        await self._ensure_started()
        return await asyncio.to_thread(self.runner.checkpoint_now)

    async def shutdown(self) -> None:
        """Checkpoint and leave; the next join recreates the actor from storage."""
        await self.runner.stop(checkpoint=True)
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def _exit_idle(self) -> None:
        """The actor leaves once its running calls end (the exception only says so)."""
        with contextlib.suppress(AsyncioActorExit):
            ray.actor.exit_actor()  # type: ignore[no-untyped-call]


# How long a thread holding the GIL keeps it from one that wants it (CPython's default: 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001


def _tune_interpreter() -> None:
    """The collector policy below, and a short GIL switch interval: the op thread gives up the
    GIL at each Redis round trip and waited up to the whole interval to get it back whenever
    the Doc thread was busy (a checkpoint, a Doc update). Shorter is not better: at 0.5 ms the
    extra hand-overs made `bench fanout`'s p99 swing from 26 to 205 ms (1 ms: 20 to 27)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    _tune_collector()


def _tune_collector() -> None:
    """A session holds many small long-lived objects (every point of every stroke).

    Rescanning them made the CPU per op grow with the session; one large young generation
    (50,000) made every actor, all fed at the same rate, pause ~25 ms at the same moment, which
    starved the gateway. Freezing only what survived the middle generation still had every
    actor scan that generation at the same moment every ~6 s (5 to 70 ms each, finding 9 cyclic
    objects in 50 collections). So the young generation stays small and whatever survives a
    collection is frozen: never scanned again. Reference counting still frees frozen objects;
    only cyclic garbage older than one collection stays (under 1,000 objects in 10 sessions'
    550 collections).
    """
    gc.set_threshold(2_000, 10, 1_000)
    gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        gc.freeze()


@contextlib.contextmanager
def actor_interpreter_policy() -> Iterator[None]:
    """A session actor's interpreter policy for the length of the block, in any process (a
    bench measuring what an actor would do); the process's own policy comes back after, with
    nothing left frozen (frozen objects are invisible to `gc.get_referrers`)."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    _tune_interpreter()
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
        gc.unfreeze()


def _open_database(url: str) -> Database:
    """Imported here: the database library is most of the actor's import time."""
    from inkstep.store.database import Database

    return Database(url, pooled=False)


def ensure_session_actor(session_id: str, lesson: Lesson, settings: Settings) -> Any:
    """The session's actor, created on first use (get_if_exists makes this race-free); with
    `session_hosts` set, the session on its host (actors/session_host.py), called alike."""
    if settings.session_hosts:
        from actors.session_host import ensure_hosted_session

        return ensure_hosted_session(session_id, lesson, settings)
    settings_json, env = settings.model_dump(mode="json"), _blob_store_env(settings)
    return SessionActor.options(  # type: ignore[attr-defined]
        name=actor_name(session_id),
        namespace=settings.ray_namespace,
        get_if_exists=True,
        lifetime="detached",
    ).remote(session_id, lesson.to_json_dict(), settings_json, env)


def _blob_store_env(settings: Settings) -> dict[str, str]:
    """The AWS_* variables boto3 reads, when the blob store is S3.

    They travel as an argument, not as a Ray runtime_env: an actor with a runtime_env of its
    own needs a worker process made for it, which took a restart after a crash from ~1.2 s
    to ~2.4 s here; without one, Ray can hand it an idle worker."""
    if not settings.resolved_blob_url().startswith("s3://"):
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
