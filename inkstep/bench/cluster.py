"""The pieces the durability benches run on: Redis, Postgres, Ray and gateway processes.

A bench starts what it is not given (`--redis-url`, `--database-url`, `--ray-address`, or a
Ray already initialised in this process), runs its gateways as `inkstep gateway` children in a
Ray namespace of its own, and can find, kill and count that namespace's session actors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import ray

from inkstep.embedded import EmbeddedPostgres, EmbeddedRedis
from inkstep.gateway_process import GatewayProcess
from inkstep.local_ray import start_local_ray
from inkstep.settings import Settings
from inkstep.tokens import mint_user_token

if TYPE_CHECKING:
    from inkstep.client import InkstepClient

LESSON_ID = "circles-101"
CANVAS_W, CANVAS_H = 800, 600

# A bench must not be refused the load it is asked to carry.
LOAD_ENV = {"INKSTEP_OPS_PER_SECOND": "1000000", "INKSTEP_OPS_BURST": "1000000"}


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the durability benches: services to reuse, settings to override."""
    parser.add_argument("--redis-url", default=None, help="a Redis to use (else embedded)")
    parser.add_argument("--database-url", default=None, help="a Postgres to use (else embedded)")
    parser.add_argument("--ray-address", default=None, help="a Ray cluster (else a local one)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="INKSTEP_X=VALUE",
        help="a setting for the gateways and session actors (repeatable)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the data dir and its logs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`["INKSTEP_X=1", ...]` as a dict; ValueError names a malformed pair."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("INKSTEP_"):
            raise ValueError(f"expected INKSTEP_NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def quiet_logs() -> None:
    """The CLI logs at INFO; per-request and per-reconnect lines would bury the figures."""
    for name in ("httpx", "inkstep.client", "websockets"):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the figures (or the JSON)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    """The machine's 1-minute load average, to read the timings against."""
    return round(os.getloadavg()[0], 1)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


class BenchCluster:
    """Redis, Postgres, Ray and `gateways` gateway processes; a context manager."""

    def __init__(self, args: argparse.Namespace, gateways: int, env: dict[str, str]) -> None:
        self.redis_url: str | None = args.redis_url
        self.database_url: str | None = args.database_url
        self.ray_address: str | None = args.ray_address
        self.keep: bool = args.keep
        self.extra_env = {**LOAD_ENV, **env, **parse_env(args.env)}
        self.gateway_count = gateways
        self.namespace = f"inkstep-bench-{uuid.uuid4().hex[:8]}"
        self.secret = uuid.uuid4().hex + uuid.uuid4().hex
        self.data_dir = Path(tempfile.mkdtemp(prefix="inkstep-bench-"))
        self.gateways: list[GatewayProcess] = []
        self._stack = ExitStack()

    # ---- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> BenchCluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        if self.redis_url is None:
            redis = self._stack.enter_context(EmbeddedRedis(self.data_dir / "redis"))
            self.redis_url = redis.url
        if self.database_url is None:
            self.database_url = self._start_postgres()
        self.ray_address = self._connect_ray()
        env = self.gateway_env()
        for index in range(self.gateway_count):
            gateway = GatewayProcess(env, self.data_dir / f"gateway-{index}.log")
            self.gateways.append(gateway)
        self._stack.callback(self.stop_gateways)
        # Launched together: each takes seconds to import and connect.
        for gateway in self.gateways:
            gateway.launch()
        for gateway in self.gateways:
            gateway.wait_ready()
        progress(f"{len(self.gateways)} gateway(s) up; data and logs in {self.data_dir}")

    def _start_postgres(self) -> str:
        # Outside the private temp dir: the server runs as its own system user under root.
        folder = Path(tempfile.mkdtemp(prefix="inkstep-bench-pg-"))
        folder.chmod(0o755)
        self._stack.callback(shutil.rmtree, folder, True)
        postgres = self._stack.enter_context(EmbeddedPostgres(folder / "data"))
        assert postgres.url is not None
        return postgres.url

    def _connect_ray(self) -> str:
        """The Ray this process already uses, the one at --ray-address, or a new local one."""
        if not ray.is_initialized():
            if self.ray_address is not None:
                ray.init(address=self.ray_address, namespace=self.namespace, log_to_driver=False)
            else:
                start_local_ray(self.namespace)
            self._stack.callback(ray.shutdown)
        self._stack.callback(self.kill_session_actors)
        address: str = ray.get_runtime_context().gcs_address
        return address

    def stop_gateways(self) -> None:
        """SIGTERM every gateway at once (each drains its clients), then wait for each."""
        for gateway in self.gateways:
            gateway.signal(signal.SIGTERM)
        for gateway in self.gateways:
            gateway.wait_exit()

    def close(self) -> None:
        """Stop gateways, session actors, Ray (if ours) and the embedded services."""
        self._stack.close()
        if self.keep:
            progress(f"kept {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def gateway_env(self) -> dict[str, str]:
        """The environment of a gateway process (its settings, passed on to the actors)."""
        assert self.redis_url and self.database_url and self.ray_address
        env = {k: v for k, v in os.environ.items() if not k.startswith("INKSTEP_")}
        env.update({
            "INKSTEP_REDIS_URL": self.redis_url,
            "INKSTEP_DATABASE_URL": self.database_url,
            "INKSTEP_RAY_ADDRESS": self.ray_address,
            "INKSTEP_RAY_NAMESPACE": self.namespace,
            "INKSTEP_DATA_DIR": str(self.data_dir),
            "INKSTEP_BLOB_URL": self.blob_url,
            "INKSTEP_SECRET_KEY": self.secret,
            **self.extra_env,
        })  # fmt: skip
        return env

    @property
    def blob_url(self) -> str:
        return (self.data_dir / "blobs").resolve().as_uri()

    # ---- users and sessions ---------------------------------------------------------

    def user_token(self, user_id: str) -> str:
        """A pro-plan user token signed with the gateways' secret."""
        return mint_user_token(Settings(secret_key=self.secret), user_id, "pro")

    async def new_session(self, teacher: str) -> str:
        """A circles-101 session created by `teacher`."""
        from inkstep.client import InkstepApi

        async with InkstepApi(self.gateways[0].url, self.user_token(teacher)) as api:
            created = await api.create_session(LESSON_ID)
        session_id: str = created["session_id"]
        return session_id

    async def session_token(self, user: str, session_id: str, role: str) -> str:
        """A session token for hello."""
        from inkstep.client import InkstepApi

        async with InkstepApi(self.gateways[0].url, self.user_token(user)) as api:
            _, token = await api.join(session_id, role)
        return token

    async def replay(self, user: str, session_id: str) -> list[dict[str, Any]]:
        """Every event of the session from GET /v1/sessions/{id}/replay."""
        import json

        import httpx

        headers = {"Authorization": f"Bearer {self.user_token(user)}"}
        async with httpx.AsyncClient(base_url=self.gateways[0].url, headers=headers,
                                     timeout=120) as http:  # fmt: skip
            response = await http.get(f"/v1/sessions/{session_id}/replay")
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line]

    # ---- session actors -------------------------------------------------------------

    def session_actor(self, session_id: str) -> Any | None:
        """The handle of the session's actor, None when it has no live actor."""
        try:
            return ray.get_actor(f"session:{session_id}", namespace=self.namespace)
        except ValueError:
            return None

    async def actor_pid(self, session_id: str, timeout_s: float = 30.0) -> int | None:
        """The process id of the session's actor (waits while Ray restarts it)."""
        handle = self.session_actor(session_id)
        if handle is None:
            return None
        try:
            pid: int = await asyncio.wait_for(handle.pid.remote(), timeout_s)
        except ray.exceptions.RayActorError:
            return None
        return pid

    async def kill_actor(self, session_id: str) -> int | None:
        """kill -9 the process of the session's actor; its pid, or None when none runs."""
        pid = await self.actor_pid(session_id)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        return pid

    def live_session_actors(self) -> list[str]:
        """Names of the live session actors in this cluster's namespace."""
        named: list[dict[str, str]] = ray.util.list_named_actors(all_namespaces=True)
        return [
            entry["name"]
            for entry in named
            if entry["namespace"] == self.namespace and entry["name"].startswith("session:")
        ]

    def kill_session_actors(self) -> None:
        """No restart: detached actors would otherwise outlive the bench on a shared Ray."""
        for name in self.live_session_actors():
            try:
                ray.kill(ray.get_actor(name, namespace=self.namespace), no_restart=True)
            except ValueError:
                continue


# ---- the benches' clients ----------------------------------------------------------------


def stroke_points(rng: random.Random, count: int) -> list[list[float]]:
    """A short random polyline inside the canvas, as `[x, y, pressure, t_ms]` points."""
    x, y = rng.uniform(50, CANVAS_W - 50), rng.uniform(50, CANVAS_H - 50)
    points: list[list[float]] = []
    for index in range(count):
        x = min(max(x + rng.uniform(-8, 8), 0.0), float(CANVAS_W))
        y = min(max(y + rng.uniform(-8, 8), 0.0), float(CANVAS_H))
        points.append([round(x, 2), round(y, 2), 0.5, float(index * 16)])
    return points


async def open_client(
    cluster: BenchCluster, urls: list[str], user: str, session_id: str, role: str
) -> InkstepClient:
    """A connected SDK client that reconnects quickly, rotating through `urls`."""
    from inkstep.client import InkstepClient

    token = await cluster.session_token(user, session_id, role)
    client = InkstepClient(urls, token, backoff_base_s=0.05, backoff_max_s=2.0)
    try:
        await client.start(timeout_s=180)
    except BaseException:
        await client.close()
        raise
    return client


async def draw_many(
    client: InkstepClient, count: int, points: int, rng: random.Random, window: int = 256
) -> dict[str, int]:
    """Send `count` one-batch strokes as fast as confirmations allow (at most `window` in
    flight) and wait until all are confirmed; answers stroke id -> points sent."""
    sent: dict[str, int] = {}
    for _ in range(count):
        if len(client.unconfirmed) >= window:
            await client.wait_for(lambda: len(client.unconfirmed) < window // 2, timeout_s=120)
        sent[await client.draw_stroke(stroke_points(rng, points))] = points
    await client.wait_for(lambda: not client.unconfirmed, timeout_s=120)
    return sent


async def draw_until(
    client: InkstepClient, stop: asyncio.Event, interval_s: float, points: int,
    rng: random.Random, sent: dict[str, int],
) -> None:  # fmt: skip
    """Draw one-batch strokes every ~`interval_s` (jittered) until `stop`; records them."""
    while not stop.is_set():
        sent[await client.draw_stroke(stroke_points(rng, points))] = points
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s * rng.uniform(0.5, 1.5))


async def poll_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1
                     ) -> bool:  # fmt: skip
    """Poll `predicate()` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


async def wait_all_confirmed(clients: Sequence[InkstepClient], timeout_s: float) -> int:
    """Wait until no client has an unconfirmed op; answers how many are left at the timeout."""
    await poll_until(lambda: not any(client.unconfirmed for client in clients), timeout_s)
    return sum(len(client.unconfirmed) for client in clients)


async def close_clients(clients: Sequence[InkstepClient]) -> None:
    """Close every client, even when some fail to close cleanly."""
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
