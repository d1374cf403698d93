"""Shared fixtures: one real Redis, one real Postgres and one local Ray per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkstep.embedded import EmbeddedPostgres, EmbeddedRedis


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
    with EmbeddedPostgres(data_root / "postgres") as server:
        assert server.url is not None
        yield server.url


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One local Ray for the whole test session; returns its GCS address."""
    import ray

    ray.init(num_cpus=2, namespace="inkstep-tests", include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
