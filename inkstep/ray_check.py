"""Whether Ray answers. `ray.is_initialized()` stays true after Ray's control store (the GCS)
died, and a call to a dead one blocks until Ray gives up on it a minute later: ask on a
thread, wait a little, and never have more than one question open."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import ray

ANSWER_TIMEOUT_S = 2.0


class RayCheck:
    """Asks Ray for its cluster's resources; a question still open is waited for again."""

    def __init__(self, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._asking: Future[None] | None = None

    def answers(self) -> bool:
        """Blocking: whether Ray answered within the timeout."""
        try:
            self._ask().result(self.timeout_s)
        except Exception:
            return False
        return True

    async def status(self) -> str:
        """For a health check: "ok", or what is wrong."""
        if not ray.is_initialized():
            return "error: not connected"
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._ask())), self.timeout_s)
        except TimeoutError:
            return f"error: Ray's control store did not answer within {self.timeout_s:.0f} s"
        except Exception as exc:
            return f"error: {exc}"
        return "ok"

    def _ask(self) -> Future[None]:
        if self._asking is None or self._asking.done():
            asking: Future[None] = Future()

            def ask() -> None:
                try:
                    ray.cluster_resources()  # type: ignore[no-untyped-call]
                    asking.set_result(None)
                except BaseException as exc:
                    asking.set_exception(exc)

            # A daemon thread: one stuck on a dead control store must not hold up the exit.
            threading.Thread(target=ask, name="ray-check", daemon=True).start()
            self._asking = asking
        return self._asking


__all__ = ["RayCheck"]
