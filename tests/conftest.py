"""Shared fixtures: one real Redis, one real Postgres and one local Ray per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkstep.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.servers import TEST_NAMESPACE


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inkstep-data")


@pytest.fixture(scope="session")
def redis_url(data_root: Path) -> Iterator[str]:
    """INKSTEP_REDIS_URL when set, else an embedded redis-server for the session."""
    if url := os.environ.get("INKSTEP_REDIS_URL"):
        yield url
        return
    with EmbeddedRedis(data_root / "redis") as server:
        yield server.url


@pytest.fixture(scope="session")
def database_url(data_root: Path) -> Iterator[str]:
    """INKSTEP_DATABASE_URL when set, else an embedded PostgreSQL for the session."""
    if url := os.environ.get("INKSTEP_DATABASE_URL"):
        yield url
        return
    # Outside pytest's private tmp dir: the server runs as its own system user.
    folder = Path(tempfile.mkdtemp(prefix="inkstep-pg-"))
    folder.chmod(0o755)
    try:
        with EmbeddedPostgres(folder / "data") as server:
            assert server.url is not None
            yield server.url
    finally:
        # A cluster is ~56 MB; each test session would otherwise leave one behind.
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One local Ray for the whole test session; returns its GCS address."""
    import ray

    from inkstep.local_ray import start_local_ray

    address = start_local_ray(TEST_NAMESPACE, num_cpus=2)
    try:
        yield address
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint_url(data_root: Path) -> Iterator[str]:
    """A moto S3 server over real HTTP (a child process), with dummy credentials in the env."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from inkstep.embedded import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_root / "moto.log"
    with open(log_path, "ab") as log, pytest.MonkeyPatch.context() as env:
        # moto accepts any key; never let a developer's real AWS profile reach the test server.
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.delenv(name, raising=False)
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                        break
                except (urllib.error.URLError, ConnectionError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"moto server not ready, see {log_path}") from None
                    # Waiting on the child doubles as the poll interval and notices an early exit.
                    try:
                        code = process.wait(timeout=0.05)
                    except subprocess.TimeoutExpired:
                        continue
                    raise RuntimeError(f"moto server exited with {code}, see {log_path}") from None
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def gateway_settings_env(
    redis_url: str, database_url: str, ray_address: str, data_root: Path
) -> dict[str, str]:
    from tests.servers import gateway_env

    os.environ["INKSTEP_SECRET_KEY"] = "inkstep-test-secret-0123456789abcdef"
    return gateway_env(redis_url, database_url, ray_address, data_root / "gateway")


@pytest.fixture(scope="session")
def gateways(gateway_settings_env: dict[str, str], data_root: Path) -> Iterator[list[object]]:
    """Two gateway processes serving the same sessions."""
    from tests.servers import GatewayProcess

    started = [
        GatewayProcess(gateway_settings_env, data_root / f"gateway-{i}.log").start()
        for i in range(2)
    ]
    try:
        yield list(started)
    finally:
        for gateway in started:
            gateway.stop()
