"""Real gateway processes for tests: `inkstep gateway` against the session's services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from inkstep.embedded import free_port

TEST_SECRET = "inkstep-test-secret-0123456789abcdef"


def wait_until(predicate: object, timeout_s: float = 10.0, interval_s: float = 0.05) -> None:
    """Poll `predicate()` until true; AssertionError on timeout."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class GatewayProcess:
    """One `inkstep gateway` child process on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inkstep.cli", "gateway", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._healthy, timeout_s, 0.2)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def gateway_env(
    redis_url: str, database_url: str, ray_address: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "INKSTEP_REDIS_URL": redis_url,
        "INKSTEP_DATABASE_URL": database_url,
        "INKSTEP_RAY_ADDRESS": ray_address,
        "INKSTEP_RAY_NAMESPACE": "inkstep-tests",
        "INKSTEP_DATA_DIR": str(data_dir),
        "INKSTEP_SECRET_KEY": TEST_SECRET,
        "INKSTEP_LOCAL_SIGN_IN": "true",
        **extra,
    })  # fmt: skip
    return env
