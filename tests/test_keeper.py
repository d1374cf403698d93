"""The service keeper on a real embedded Redis: it starts a killed one again, keeps trying
while it cannot, and leaves alone what is stopped after it; a vital process that dies stops
the server instead."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import redis

from inkstep.embedded import EmbeddedRedis
from inkstep.keeper import CHECK_INTERVAL_S, ServiceKeeper
from tests.servers import wait_until

# What does not happen cannot be waited for: these tests give the keeper two of its checks.
TWO_CHECKS_S = 2 * CHECK_INTERVAL_S + 0.1


def _never() -> None:
    raise AssertionError("the keeper stopped the server")


def _appended(server: EmbeddedRedis, text: bytes) -> bool:
    """Whether Redis has written `text` to its append-only files (it does so once a second)."""
    return any(text in path.read_bytes() for path in server.data_dir.rglob("*.aof"))


def _kill(server: EmbeddedRedis) -> None:
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    process.kill()
    process.wait(10)


def test_a_killed_redis_comes_back_with_its_data_once_its_port_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="inkstep.keeper")
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        redis.Redis.from_url(server.url).set("kept", "yes")
        with ServiceKeeper([server], stop_server=_never):
            wait_until(lambda: _appended(server, b"kept"))
            _kill(server)
            with socket.create_server(("127.0.0.1", server.port)):  # another takes the port
                wait_until(lambda: "did not start" in caplog.text, timeout_s=20)
                assert not server.is_running()
            wait_until(lambda: "redis-server is running again" in caplog.text, timeout_s=20)
            assert redis.Redis.from_url(server.url).get("kept") == b"yes"
    finally:
        server.stop()


def test_after_the_keeper_stops_a_stopped_service_stays_stopped(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with ServiceKeeper([server], stop_server=_never):
            pass
        server.stop()
        time.sleep(TWO_CHECKS_S)  # had it still been watching
        assert not server.is_running()
    finally:
        server.stop()


class _Vital:
    name = "a vital process"

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def is_running(self) -> bool:
        return self.process.poll() is None


def test_a_vital_process_that_dies_stops_the_server_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stops: list[float] = []
    vital = subprocess.Popen(["sleep", "600"])
    try:
        with ServiceKeeper([], stop_server=lambda: stops.append(time.monotonic())) as keeper:
            keeper.watch_vital(_Vital(vital))
            time.sleep(TWO_CHECKS_S)  # alive: no stop
            assert stops == []
            vital.kill()
            wait_until(lambda: stops != [], timeout_s=5)
            time.sleep(TWO_CHECKS_S)  # later checks find it still gone: no second stop
        assert len(stops) == 1
        assert "a vital process stopped" in caplog.text

        again = subprocess.Popen(["sleep", "600"])
        with ServiceKeeper([], stop_server=lambda: stops.append(time.monotonic())) as keeper:
            keeper.watch_vital(_Vital(again))
            keeper.forget_vital()
            again.kill()
            again.wait()
            time.sleep(TWO_CHECKS_S)
        assert len(stops) == 1  # a deliberate stop, after forget_vital()
    finally:
        vital.kill()
        vital.wait()
