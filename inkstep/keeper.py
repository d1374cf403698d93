"""Keeps the services `inkstep serve` started running: one that exits on its own is started
again on the same port and data, and the gateways and sessions reconnect to it. A vital one,
which cannot be started again under a running server (Ray's control store, its raylet),
stops the server instead, so that whatever supervises it starts it afresh."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.5
# A service that will not start is tried again after 1, 2, 4 … seconds, at most this far apart.
MAX_RETRY_INTERVAL_S = 30.0


class WatchedService(Protocol):
    name: str

    def is_running(self) -> bool: ...


class KeptService(WatchedService, Protocol):
    def restart(self) -> None: ...


class ServiceKeeper:
    """A thread that checks its services twice a second and restarts any that stopped, or
    stops the server when a vital one did.

    Leave it before stopping the services themselves, so a deliberate stop is not undone.
    """

    def __init__(self, services: Sequence[KeptService], stop_server: Callable[[], None]) -> None:
        self.services = list(services)
        self.vital: list[WatchedService] = []
        self.stop_server = stop_server
        self.vital_lost = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="service-keeper", daemon=True)
        self._retry_at = {service.name: 0.0 for service in self.services}
        self._retry_interval = {service.name: 1.0 for service in self.services}

    def __enter__(self) -> ServiceKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join()

    def watch_vital(self, service: WatchedService) -> None:
        self.vital.append(service)

    def forget_vital(self) -> None:
        """Before stopping the vital services: their stopping then stops nothing else."""
        self.vital = []

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_INTERVAL_S):
            for vital in self.vital:
                if not self.vital_lost and not vital.is_running():
                    self.vital_lost = True
                    logger.error(
                        "%s stopped, and it cannot be started again under a running server: "
                        "stopping the server (start it again)",
                        vital.name,
                    )
                    self.stop_server()
            for service in self.services:
                if self._stopping.is_set():
                    return
                if not service.is_running() and time.monotonic() >= self._retry_at[service.name]:
                    self._start_again(service)

    def _start_again(self, service: KeptService) -> None:
        name = service.name
        logger.warning("%s stopped on its own; starting it again", name)
        try:
            service.restart()
        except Exception as exc:
            wait_s = self._retry_interval[name]
            self._retry_at[name] = time.monotonic() + wait_s
            self._retry_interval[name] = min(wait_s * 2, MAX_RETRY_INTERVAL_S)
            logger.error("%s did not start (%s); trying again in %.0f s", name, exc, wait_s)
            return
        self._retry_interval[name] = 1.0
        logger.warning("%s is running again", name)


__all__ = ["KeptService", "ServiceKeeper", "WatchedService"]
