"""The local Ray that `inkstep serve` (and this test session) starts."""

from __future__ import annotations

import psutil


def _ray_children() -> list[str]:
    """The command lines of the processes this process started, Ray's among them."""
    commands = []
    for child in psutil.Process().children(recursive=True):
        try:
            commands.append(" ".join(child.cmdline()))
        except psutil.Error:
            continue  # it exited meanwhile
    return commands


def test_the_local_ray_runs_without_its_log_monitor(ray_address: str) -> None:
    commands = _ray_children()
    assert any("raylet" in command for command in commands)  # Ray's processes are seen here
    assert not [command for command in commands if "log_monitor.py" in command]
