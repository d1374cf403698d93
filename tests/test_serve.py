"""The README's run command: `inkstep serve` on its embedded defaults (its own Ray, Redis and
Postgres, a local blob folder), the README's example against it, and a clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from inkstep.bench.harness import ServerProcess
from inkstep.client import InkstepApi, InkstepClient
from inkstep.embedded import free_port
from inkstep.gateway_process import wait_healthy
from inkstep.running import running_urls, write_running
from inkstep.settings import PACKAGE_ROOT
from tests.helpers import line
from tests.servers import wait_until

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


def _embedded_env(data_dir: Path) -> dict[str, str]:
    """This environment without the test session's INKSTEP_* settings: serve starts its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INKSTEP_")}
    env["INKSTEP_DATA_DIR"] = str(data_dir)
    return env


def _started_by(pid: int, data_dir: Path) -> dict[psutil.Process, str]:
    """The server's descendants (Ray, Redis, the gateway) and whatever works in its data folder
    (Postgres daemonises out of the tree), with their command lines."""
    tree = set(psutil.Process(pid).children(recursive=True))
    found = {}
    for process in psutil.process_iter():
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue  # exited, or not ours to read
        if process in tree or str(data_dir) in command:
            found[process] = command
    return found


def _beside(data_dir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """An `inkstep` command given the server's data folder by --data-dir alone."""
    return subprocess.run(
        [sys.executable, "-m", "inkstep.cli", *command, "--data-dir", str(data_dir)],
        env=_beside_env(data_dir), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip


def _beside_env(data_dir: Path) -> dict[str, str]:
    """No INKSTEP_* settings at all: only --data-dir leads to the server."""
    env = _embedded_env(data_dir)
    del env["INKSTEP_DATA_DIR"]
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    data_dir, port = tmp_path / "data", free_port()
    command = [sys.executable, "-m", "inkstep.cli", "serve", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip
    # Leaving the block kills whatever a failed test left running.
    with ServerProcess(command, port, _embedded_env(data_dir), tmp_path / "serve.log") as server:
        server.start("/healthz", timeout_s=START_TIMEOUT_S)
        yield server, data_dir


def test_serve_runs_the_readme_example_and_stops_everything_on_sigterm(
    served: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = served
    example = subprocess.run(
        [sys.executable, str(PACKAGE_ROOT / "examples" / "two_users.py"), "--url", server.url],
        env=_embedded_env(data_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert example.returncode == 0, example.stderr
    assert "ben sees ada's stroke" in example.stdout
    assert "deleted=True" in example.stdout

    # The commands run beside the server find its secret and services through --data-dir.
    token = _beside(data_dir, "token", "--user", "ada").stdout.strip()
    lessons = httpx.get(f"{server.url}/v1/lessons", headers={"Authorization": f"Bearer {token}"})
    assert lessons.status_code == 200, lessons.text
    lesson_file = PACKAGE_ROOT / "lessons" / "circles-101.json"
    imported = _beside(data_dir, "lessons", "import", str(lesson_file))
    assert "imported circles-101" in imported.stdout
    session_id = example.stdout.split()[1].rstrip(":")
    replay = _beside(data_dir, "replay", "export", session_id).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in replay] == list(range(1, len(replay) + 1))
    assert {json.loads(line)["type"] for line in replay} >= {"stroke_append", "undo"}
    # So does a second gateway: every service it checks answers.
    port = free_port()
    gateway = [sys.executable, "-m", "inkstep.cli", "gateway", "--host", "127.0.0.1", "--port",
               str(port), "--data-dir", str(data_dir)]  # fmt: skip
    gateway_log = data_dir.parent / "gateway.log"
    with ServerProcess(gateway, port, _beside_env(data_dir), gateway_log) as second:
        second.start("/healthz", timeout_s=START_TIMEOUT_S)
        health = httpx.get(f"{second.url}/healthz").json()
        assert set(health["checks"].values()) == {"ok"}, health
    assert f"on Ray at {running_urls(data_dir)['ray_address']}" in gateway_log.read_text()

    started = _started_by(server.pid, data_dir)
    for part in ("redis-server", "postgres", "raylet"):
        assert any(part in command for command in started.values()), part
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=STOP_TIMEOUT_S) == 0  # a requested stop
    _, alive = psutil.wait_procs(list(started), timeout=STOP_TIMEOUT_S)
    assert [started[p] for p in alive] == []
    assert running_urls(data_dir) == {}


def test_serve_on_a_busy_port_says_so_before_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "inkstep.cli", "serve", "--port", str(port),
                   "--data-dir", str(data_dir)]  # fmt: skip
        served = subprocess.run(command, env=_embedded_env(data_dir), capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert served.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in served.stderr
    assert not data_dir.exists()  # no Redis, Postgres or Ray was started


def test_a_second_serve_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_running(data_dir, {"redis_url": "redis://127.0.0.1:1/0"})  # this live process
    command = [sys.executable, "-m", "inkstep.cli", "serve", "--port", str(free_port()),
               "--data-dir", str(data_dir)]  # fmt: skip
    served = subprocess.run(command, env=_embedded_env(data_dir), capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert served.returncode != 0
    assert f"(pid {os.getpid()}) is already running" in served.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == ["running.json"]  # nothing started


async def _teacher_client(base_url: str, name: str) -> tuple[str, InkstepClient]:
    """A new session on the embedded server, its teacher signed in locally and connected."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        signed_in = await http.post("/v1/auth/local", json={"name": name})
    async with InkstepApi(base_url, signed_in.json()["token"]) as api:
        session_id = (await api.create_session("circles-101"))["session_id"]
        ws_url, session_token = await api.join(session_id, "teacher")
    client = InkstepClient(ws_url, session_token, backoff_base_s=0.05)
    await client.start()
    return session_id, client


def _postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))


def _kill_postmaster_and_wait_for_another(data_dir: Path) -> None:
    killed = _postmaster(data_dir)
    killed.kill()
    killed.wait(10)

    def another_runs() -> bool:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            return _postmaster(data_dir).pid != killed.pid
        return False

    wait_until(another_runs, timeout_s=60)


async def test_serve_starts_its_redis_and_postgres_again_when_they_die(
    served: tuple[ServerProcess, Path],
) -> None:
    server, data_dir = served
    session_id, ada = await _teacher_client(server.url, "ada")
    try:
        sent = [await ada.draw_stroke(line(10, 10 + i, n=3)) for i in range(5)]
        await ada.wait_confirmed(sent[-1])
        redis_server = next(p for p in _started_by(server.pid, data_dir) if "redis" in p.name())
        redis_server.kill()
        sent += [await ada.draw_stroke(line(100, 10 + i, n=3)) for i in range(5)]
        await ada.wait_for(lambda: not ada.unconfirmed, timeout_s=60)
    finally:
        await ada.close()

    _kill_postmaster_and_wait_for_another(data_dir)
    wait_healthy(f"{server.url}/healthz", server.process, 60)
    # Sessions are rows in Postgres: a new one needs the restarted postmaster.
    _, ben = await _teacher_client(server.url, "ben")
    await ben.close()

    replay = _beside(data_dir, "replay", "export", session_id).stdout.splitlines()
    events = [json.loads(line) for line in replay]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    drawn = [e["client_op_id"] for e in events if e["type"] == "stroke_append"]
    assert sorted(drawn) == sorted(sent)  # every op once, the retried ones too
    log = server.log_path.read_text()
    assert "redis-server stopped on its own; starting it again" in log
    assert "postgres stopped on its own; starting it again" in log

    # Ray's control store cannot come back under a live Ray: the server stops, everything with
    # it, at once rather than when Ray gives up on its control store a minute later.
    started = _started_by(server.pid, data_dir)
    control_store = next(p for p in started if p.name() == "gcs_server")
    control_store.kill()
    assert server.process is not None
    # Not 0, so that a supervisor starts it again; and not the minute Ray takes to give up.
    assert server.process.wait(timeout=STOP_TIMEOUT_S / 2) == 1
    _, alive = psutil.wait_procs(list(started), timeout=STOP_TIMEOUT_S)
    assert [started[p] for p in alive] == []
    log = server.log_path.read_text()
    assert "Ray's gcs_server stopped" in log
    assert "stopping without the sessions' last checkpoint" in log


def test_ctrl_c_stops_redis_after_the_sessions_and_a_killed_server_leaves_none_behind(
    tmp_path: Path,
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    command = [sys.executable, "-m", "inkstep.cli", "serve", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip
    log_path = tmp_path / "serve.log"
    with ServerProcess(command, port, _embedded_env(data_dir), log_path, own_group=True) as server:
        server.start("/healthz", timeout_s=START_TIMEOUT_S)
        example = subprocess.run(
            [sys.executable, str(PACKAGE_ROOT / "examples" / "two_users.py"), "--url",
             server.url], env=_embedded_env(data_dir), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert example.returncode == 0, example.stderr
        started = _started_by(server.pid, data_dir)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(timeout=STOP_TIMEOUT_S) == 0
        _, alive = psutil.wait_procs(list(started), timeout=STOP_TIMEOUT_S)
        assert [started[p] for p in alive] == []
    log = log_path.read_text()
    assert "checkpointed 1 of 1 sessions" in log
    assert "fan-out read failed" not in log  # Redis was still there while the gateway drained
    assert "stopped on its own" not in log

    # A server killed outright leaves its Redis; the next one on the folder stops it first.
    with ServerProcess(command, port, _embedded_env(data_dir), log_path) as server:
        server.start("/healthz", timeout_s=START_TIMEOUT_S)
        left = next(p for p in _started_by(server.pid, data_dir) if "redis" in p.name())
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)
    assert left.is_running()
    with ServerProcess(command, port, _embedded_env(data_dir), log_path) as server:
        server.start("/healthz", timeout_s=START_TIMEOUT_S)
        assert not left.is_running()
        assert f"stopping a redis-server (pid {left.pid}) left on" in log_path.read_text()
        started = _started_by(server.pid, data_dir)
    # Its Postgres too, which the killed server had started and this one took over.
    _, alive = psutil.wait_procs(list(started), timeout=STOP_TIMEOUT_S)
    assert [started[p] for p in alive] == []
