"""An `inkstep gateway` child process: started, health-checked, signalled, stopped.

Used by the benchmarks and the tests to run real gateways beside the caller.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from inkstep.embedded import free_port


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Poll `url` until it answers 200; RuntimeError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout_s} s")
        time.sleep(0.2)


class GatewayProcess:
    """One `inkstep gateway` child process on a fixed port (so a restart keeps its URL)."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.env, self.log_path = env, log_path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, timeout_s: float = 180.0) -> GatewayProcess:
        """Start the process and wait until /healthz answers."""
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it."""
        command = [sys.executable, "-m", "inkstep.cli", "gateway", "--host", "127.0.0.1",
                   "--port", str(self.port)]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Wait until /healthz answers 200."""
        assert self.process is not None, "launch() the gateway first"
        try:
            wait_healthy(f"{self.url}/healthz", self.process, timeout_s)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; {self.log_path} ends with:\n{tail}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """Send `sig` and wait; SIGKILL when it does not exit in time."""
        self.signal(sig)
        self.wait_exit(timeout_s)

    def signal(self, sig: int) -> None:
        """Send `sig` to the process if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait_exit(self, timeout_s: float = 20.0) -> None:
        """Wait for the process to exit; SIGKILL when it does not in time."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
