"""Where a running `inkstep serve` put its embedded services, for the commands run beside it.

The embedded Redis, Postgres and Ray listen on ports picked at start, so `inkstep replay
export`, `inkstep lessons import` or a second `inkstep gateway` could not find them from the
environment alone. `serve` writes their addresses into its data folder while it runs;
commands given the same data folder read them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil

RECORD_NAME = "running.json"


def record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_NAME


def write_running(data_dir: Path, urls: dict[str, str]) -> None:
    """Record this process's services (`redis_url`, `database_url`, `ray_address`,
    `ray_auth_mode`) in `data_dir`."""
    path = record_path(data_dir)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **urls}))
    temporary.replace(path)  # readers never see half a file


def clear_running(data_dir: Path) -> None:
    record_path(data_dir).unlink(missing_ok=True)


def running_server(data_dir: Path) -> dict[str, Any]:
    """The record of a live `serve` in `data_dir` (its `pid` and services); empty when none
    runs there (a record left by a server that was killed names a process that is gone)."""
    try:
        record = json.loads(record_path(data_dir).read_text())
    except (OSError, ValueError):
        return {}
    pid = record.get("pid") if isinstance(record, dict) else None
    if not isinstance(pid, int) or pid <= 0 or not psutil.pid_exists(pid):
        return {}
    return dict(record)


def running_urls(data_dir: Path) -> dict[str, str]:
    """The service addresses a live `serve` recorded in `data_dir`; empty when none runs."""
    return {k: v for k, v in running_server(data_dir).items() if isinstance(v, str)}


def ray_of_running_server(data_dir: Path) -> str | None:
    """The address of the Ray a live `serve` started in `data_dir`, with this process set to
    authenticate as the server's gateways do: Ray sends its token to an address given
    explicitly only when RAY_AUTH_MODE says so."""
    record = running_urls(data_dir)
    address = record.get("ray_address")
    if address is not None and record.get("ray_auth_mode"):
        os.environ.setdefault("RAY_AUTH_MODE", record["ray_auth_mode"])
    return address
