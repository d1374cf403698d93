"""The record a running `inkstep serve` leaves in its data folder for the commands beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inkstep.running import (
    clear_running,
    ray_of_running_server,
    record_path,
    running_urls,
    write_running,
)
from inkstep.settings import Settings

URLS = {"redis_url": "redis://127.0.0.1:1234/0", "database_url": "postgresql://x@h/db",
        "ray_address": "127.0.0.1:6380", "ray_auth_mode": "token"}  # fmt: skip


def test_the_record_of_this_process_gives_its_services_until_cleared(tmp_path: Path) -> None:
    write_running(tmp_path, URLS)
    assert running_urls(tmp_path) == URLS
    settings = Settings(data_dir=tmp_path, redis_url=None, database_url=None)
    assert settings.resolved_redis_url() == URLS["redis_url"]
    assert settings.resolved_database_url() == URLS["database_url"]
    clear_running(tmp_path)
    assert running_urls(tmp_path) == {}


def test_joining_the_servers_ray_authenticates_as_its_gateways_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert ray_of_running_server(tmp_path) is None
    assert "RAY_AUTH_MODE" not in os.environ
    write_running(tmp_path, URLS)
    assert ray_of_running_server(tmp_path) == URLS["ray_address"]
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_a_record_left_by_a_killed_server_or_a_broken_one_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    record_path(tmp_path).write_text(f'{{"pid": {gone.stdout.strip()}, "redis_url": "r"}}')
    assert running_urls(tmp_path) == {}
    record_path(tmp_path).write_text("{not json")
    assert running_urls(tmp_path) == {}
    settings = Settings(data_dir=tmp_path, redis_url=None, database_url=None)
    with pytest.raises(RuntimeError, match="no `inkstep serve` is running with data in"):
        settings.resolved_database_url()
