"""Writes what Postgres keeps of a session (participants, results, progress) from its events.

The log is the truth; these rows are a projection for REST reads and reporting. Writes go
through one background task in event order and are retried while Postgres is unreachable,
so a slow or absent database never holds up the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inkstep.store.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from inkstep.store.database import Database

logger = logging.getLogger(__name__)


# The events that change a row; a session's other events (strokes, undo, layers) change none.
PROJECTED_TYPES = frozenset({"participant", "score_update", "step_change"})


def projected(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of a batch that change a row. The session thread picks them out, so a batch
    of strokes does not wake the actor's loop at all."""
    return [event for event in events if event["type"] in PROJECTED_TYPES]


class Projection:
    """Queues events and writes the rows they imply."""

    def __init__(self, open_db: Callable[[], Database], session_id: str) -> None:
        self.open_db = open_db
        self._db: Database | None = None
        self.session_id = session_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"projection:{self.session_id}")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.queue.join(), flush_timeout_s)
        except TimeoutError:
            logger.warning("projection not flushed", extra={"session_id": self.session_id})
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._db is not None:
            await self._db.close()

    async def database(self) -> Database:
        """The database client, opened on first use: a restarted session serves ops before
        it has loaded the database library."""
        if self._db is None:
            self._db = await asyncio.to_thread(self.open_db)
        return self._db

    def add(self, events: list[dict[str, Any]]) -> None:
        """Queue `projected` events, in order."""
        for event in events:
            self.queue.put_nowait(event)

    def add_scores(self, scores: list[dict[str, Any]]) -> None:
        """Re-queue every known score (after a rebuild); add_result ignores repeats."""
        for score in scores:
            payload = {k: v for k, v in score.items() if k != "seq"}
            self.queue.put_nowait({"type": "score_update", "seq": score["seq"], "payload": payload})

    async def _run(self) -> None:
        while True:
            event = await self.queue.get()
            backoff_s = 0.2
            while True:
                try:
                    await self._write(event)
                    break
                except StoreUnavailable:
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
                except StoreError:
                    logger.exception(
                        "projection write refused", extra={"session_id": self.session_id}
                    )
                    break
            self.queue.task_done()

    async def _write(self, event: dict[str, Any]) -> None:
        payload, sid, db = event["payload"], self.session_id, await self.database()
        if event["type"] == "participant":
            await db.record_participant(sid, payload["user_id"], payload["role"], payload["state"])
        elif event["type"] == "score_update":
            await db.add_result(
                sid, payload["user_id"], payload["step_id"], event["seq"], payload["accuracy"],
                payload["quality"], payload["passed"], payload.get("details", {}),
            )  # fmt: skip
        elif event["type"] == "step_change":
            await db.update_session_progress(sid, payload["to_step"], event["seq"])
