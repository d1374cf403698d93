"""Shared bench helpers: a server to measure, CPU/RSS sampling, sessions to join, tables."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psutil

from inkstep.bench.wire import WireSocket
from inkstep.embedded import free_port
from inkstep.gateway_process import wait_healthy

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

LESSON_ID = "circles-101"
FIRST_STEP = "s1"
CANVAS_W, CANVAS_H = 800, 600

# Events are `{"type", "session_id", "seq", "step_id", "client_op_id", ..., "payload"}`: reading
# the head with a regex costs ~6 us where json.loads of a 20-point batch costs ~60 us, and the
# load generator must not become the bottleneck. Frames in any other shape are parsed as JSON.
EVENT_HEAD = re.compile(
    r'\{"type":\s*"(\w+)".*?"seq":\s*(\d+).*?"client_op_id":\s*(?:"([^"]*)"|null)'
)

# The bench's own server must not refuse the load it is asked to carry.
UNLIMITED_OPS_ENV = {"INKSTEP_OPS_PER_SECOND": "1000000", "INKSTEP_OPS_BURST": "1000000"}


# ---- a server process ------------------------------------------------------------------


class ServerProcess:
    """A child process serving HTTP/WS on `port`; stopped with SIGTERM (then its leftovers)."""

    def __init__(
        self, command: list[str], port: int, env: dict[str, str], log_path: Path,
        own_group: bool = False,
    ) -> None:  # fmt: skip
        self.command, self.port, self.env, self.log_path = command, port, env, log_path
        # A process group of its own, as a terminal gives a command (Ctrl+C signals it all).
        self.own_group = own_group
        self.process: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, psutil.Process] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def start(self, health_path: str | None, timeout_s: float = 120.0) -> ServerProcess:
        """Start the child and wait until it answers `health_path` (or its port accepts)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )  # fmt: skip
        if health_path is None:
            wait_port(self.port, self.process, timeout_s)
        else:
            wait_healthy(self.url + health_path, self.process, timeout_s)
        return self

    def remember_tree(self) -> None:
        """Note the child's descendants so stop() can reap any it fails to stop itself."""
        for proc in tree_processes([self.pid], ()):
            self._seen[proc.pid] = proc

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, wait, then kill whatever of the remembered tree is still running."""
        if self.process is None:
            return
        self.remember_tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for proc in self._seen.values():
            _kill_if_running(proc)
        self.process = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _kill_if_running(proc: psutil.Process) -> None:
    # is_running() also checks the create time, so a recycled pid is never signalled.
    try:
        if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            proc.kill()
    except psutil.Error:
        pass


def wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} not open within {timeout_s} s") from None
            time.sleep(0.05)


class InkstepServer:
    """`inkstep serve` on a free port with a temporary data dir and a known secret."""

    def __init__(self, workers: int, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="inkstep-bench-"))
        self.secret = os.urandom(24).hex()
        env = dict(os.environ)
        env.update({"INKSTEP_SECRET_KEY": self.secret, **UNLIMITED_OPS_ENV, **(extra_env or {})})
        port = free_port()
        command = [sys.executable, "-m", "inkstep.cli", "serve", "--port", str(port),
                   "--data-dir", str(self.data_dir), "--workers", str(workers)]  # fmt: skip
        self.server = ServerProcess(command, port, env, self.data_dir / "serve.log")

    def __enter__(self) -> InkstepServer:
        try:
            self.server.start("/healthz")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.server.remember_tree()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.pid


# ---- CPU and RSS of a process tree -----------------------------------------------------


def tree_processes(root_pids: Sequence[int], markers: Sequence[str]) -> list[psutil.Process]:
    """The roots, all their descendants, and any process whose command line holds a marker
    (embedded Postgres daemonises away from the tree, but its data dir names it)."""
    found: dict[int, psutil.Process] = {}
    roots: list[psutil.Process] = []
    for pid in root_pids:
        try:
            roots.append(psutil.Process(pid))
        except psutil.Error:
            continue
    if markers:
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or ())
            if any(marker in cmdline for marker in markers):
                roots.append(proc)
    for root in roots:
        found[root.pid] = root
        try:
            for child in root.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            continue
    return list(found.values())


def process_label(proc: psutil.Process) -> str:
    """A short, readable name: Ray sets worker titles such as `ray::SessionActor`."""
    try:
        cmdline = proc.cmdline()
        name = proc.name()
    except psutil.Error:
        return f"?[{proc.pid}]"
    if cmdline and cmdline[0].startswith("ray::"):
        name = cmdline[0].split()[0]
    elif "spawn_main" in " ".join(cmdline):
        name = "gateway-worker"  # uvicorn's workers are multiprocessing children
    elif len(cmdline) > 3 and cmdline[1:3] == ["-m", "inkstep.cli"]:
        name = f"inkstep-{cmdline[3]}"
    elif len(cmdline) > 2 and cmdline[1:3] == ["-m", "inkstep.bench.baseline"]:
        name = "baseline"
    elif name.startswith("python"):
        scripts = [Path(arg).name for arg in cmdline[1:] if arg.endswith(".py")]
        name = scripts[0] if scripts else name
    return f"{name}[{proc.pid}]"


@dataclass
class _Seen:
    proc: psutil.Process
    label: str
    cpu_at_start_s: float
    cpu_last_s: float


@dataclass
class Usage:
    """CPU (percent of one core, summed over processes) and RSS over a sampled window."""

    cpu_percent: float
    rss_mib: float
    peak_rss_mib: float
    processes: int
    top: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu_percent": round(self.cpu_percent, 1),
            "rss_mib": round(self.rss_mib, 1),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "processes": self.processes,
            "top": [{"process": label, "cpu_percent": round(cpu, 1)} for label, cpu in self.top],
        }


class TreeSampler:
    """Samples the CPU time and RSS of a process tree in a thread, between start() and stop().

    CPU% = CPU seconds used by every process seen in the window / wall seconds x 100, so
    100% is one full core. The tree is looked for at start() and at stop() only: finding it
    reads every process of the machine (~35 ms of CPU in one burst with a 10-session server
    up), which, done at every sample, took a core from the server being measured twice a
    second. Between them only the processes found at the start are sampled. A process that
    starts inside the window and is still there at stop() counts from zero; one that exits
    counts up to its last sample; one that comes and goes inside the window is not seen.
    """

    def __init__(
        self, root_pids: Sequence[int], markers: Sequence[str] = (), interval_s: float = 0.5
    ) -> None:
        self.root_pids, self.markers, self.interval_s = list(root_pids), list(markers), interval_s
        self._seen: dict[tuple[int, float], _Seen] = {}
        self._rss_now_b = 0
        self._rss_peak_b = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._started_at = 0.0
        self._wall_s = 0.0
        self._found: list[psutil.Process] = []

    def start(self) -> TreeSampler:
        self._started_at = time.monotonic()
        self._found = tree_processes(self.root_pids, self.markers)
        self._sample(self._found, first=True)
        self._thread.start()
        return self

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        self._sample(tree_processes(self.root_pids, self.markers), first=False)
        self._wall_s = time.monotonic() - self._started_at
        return self.usage()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample(self._found, first=False)

    def _sample(self, processes: Sequence[psutil.Process], first: bool) -> None:
        rss = 0
        for proc in processes:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu_s = times.user + times.system
                    rss += proc.memory_info().rss
                    key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            seen = self._seen.get(key)
            if seen is None:
                start_s = cpu_s if first else 0.0
                self._seen[key] = _Seen(proc, process_label(proc), start_s, cpu_s)
            else:
                seen.cpu_last_s = cpu_s
        self._rss_now_b = rss
        self._rss_peak_b = max(self._rss_peak_b, rss)

    def usage(self) -> Usage:
        wall_s = max(self._wall_s, 1e-9)
        per = [(s.label, (s.cpu_last_s - s.cpu_at_start_s) / wall_s * 100)
               for s in self._seen.values()]  # fmt: skip
        per.sort(key=lambda item: item[1], reverse=True)
        return Usage(
            cpu_percent=sum(cpu for _, cpu in per),
            rss_mib=self._rss_now_b / 2**20,
            peak_rss_mib=self._rss_peak_b / 2**20,
            processes=len(per),
            top=[item for item in per[:6] if item[1] >= 0.05],
        )


# ---- sessions to join ------------------------------------------------------------------


@dataclass(frozen=True)
class Seat:
    """One client's place in a session: where to connect and the session token for hello."""

    ws_url: str
    token: str
    user_id: str


async def user_token(base_url: str, name: str, secret: str | None) -> tuple[str, str]:
    """A user token and its user id: minted with the secret, else by local sign-in."""
    if secret:
        from inkstep.settings import Settings
        from inkstep.tokens import mint_user_token

        return mint_user_token(Settings(secret_key=secret), name, "pro", True), name
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post("/v1/auth/local", json={"name": name})
        if response.status_code == 403:
            raise RuntimeError(
                f"{base_url} has local sign-in disabled: set INKSTEP_SECRET_KEY to its secret"
            )
        response.raise_for_status()
        body = response.json()
    return str(body["token"]), str(body["user_id"])


async def provision_session(base_url: str, clients: int, secret: str | None, tag: str
                            ) -> list[Seat]:  # fmt: skip
    """Create a session as its first client (the teacher) and seat the others as students."""
    from inkstep.client import InkstepApi

    seats: list[Seat] = []
    session_id = ""
    for index in range(clients):
        token, user_id = await user_token(base_url, f"bench-{tag}-{index}", secret)
        async with InkstepApi(base_url, token) as api:
            if index == 0:
                session_id = (await api.create_session(LESSON_ID))["session_id"]
            ws_url, session_token = await api.join(session_id, "teacher" if index == 0
                                                   else "student")  # fmt: skip
        seats.append(Seat(ws_url, session_token, user_id))
    return seats


async def provision_sessions(
    base_url: str, sessions: int, clients: int, secret: str | None, tag: str
) -> list[list[Seat]]:
    """`sessions` sessions of `clients` seats each, created a few at a time."""
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> list[Seat]:
        async with limit:
            return await provision_session(base_url, clients, secret, f"{tag}{index}")

    return list(await asyncio.gather(*(one(i) for i in range(sessions))))


def quiet_http_logs() -> None:
    """The CLI logs at INFO; one line per bench HTTP request would bury the figures."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)


def default_secret() -> str | None:
    """INKSTEP_SECRET_KEY from the environment, if any (for `--url` servers)."""
    return os.environ.get("INKSTEP_SECRET_KEY") or None


# ---- figures ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: floats rounded, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print rows as an aligned text table; `columns` are (key, header) pairs."""
    cells = [[header for _, header in columns]]
    cells += [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def print_json(value: Any) -> None:
    """Print a result as indented JSON (NaN becomes null)."""
    print(json.dumps(_finite(value), indent=2))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def load_average() -> float:
    """The machine's 1-minute load average, to read the figures against."""
    return os.getloadavg()[0]


# ---- the bench's WebSocket clients -----------------------------------------------------


def stroke_frame(op_id: str, stroke_id: str, points_json: str, final: bool) -> str:
    """One `stroke_append` op as a client sends it; `points_json` is the JSON point list."""
    return (
        f'{{"type":"stroke_append","client_op_id":"{op_id}","step_id":"{FIRST_STEP}",'
        f'"payload":{{"stroke_id":"{stroke_id}","layer":"ink","points":{points_json},'
        f'"style":{{"color":"#112233","width":3,"tool":"pen"}},'
        f'"final":{"true" if final else "false"}}}}}'
    )


async def open_and_join(seat: Seat, deflate: bool = False, timeout_s: float = 120.0
                        ) -> tuple[ClientConnection, dict[str, Any], str]:  # fmt: skip
    """Connect, send hello, and read up to the snapshot: (socket, welcome, raw snapshot)."""
    import websockets

    # No client-side keepalive pings: on a starved machine their timeouts would close
    # sockets and count as the server's losses; the server pings at the WS level itself.
    ws = await websockets.connect(
        seat.ws_url, max_size=None, open_timeout=timeout_s, ping_interval=None,
        compression="deflate" if deflate else None,
    )  # fmt: skip
    try:
        await ws.send(hello(seat))
        async with asyncio.timeout(timeout_s):
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {str(welcome)[:200]}")
            while True:
                raw = await ws.recv()
                assert isinstance(raw, str), "the server sends text frames"
                if is_snapshot(raw):
                    return ws, welcome, raw
    except BaseException:
        await ws.close()
        raise


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (it is with uvicorn[standard]), which costs the
    load generator less CPU per message than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def is_snapshot(raw: str) -> bool:
    return raw.startswith('{"type":"session_snapshot"') or '"session_snapshot"' in raw[:40]


def hello(seat: Seat) -> str:
    return json.dumps({"type": "hello", "token": seat.token, "last_seq": None, "client": "bench"})


async def join_on_wire(seat: Seat, deflate: bool, timeout_s: float) -> tuple[WireSocket, str]:
    """`open_and_join` on the load generator's lean client: (socket, raw snapshot)."""
    socket = await WireSocket.connect(seat.ws_url, timeout_s, deflate)
    try:
        socket.send(hello(seat))
        async with asyncio.timeout(timeout_s):
            welcome = json.loads(await socket.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {str(welcome)[:200]}")
            while not is_snapshot(raw := await socket.recv()):
                pass
            return socket, raw
    except BaseException:
        await socket.close()
        raise
