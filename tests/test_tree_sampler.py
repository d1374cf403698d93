"""The benches' CPU sampler: it finds the measured processes at the window's edges only, and
counts every process that is there at either edge."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from inkstep.bench import harness
from inkstep.bench.harness import TreeSampler

BURN = """
import signal, subprocess, sys, time
def burn(seconds):
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass
"""
# A child that burns 0.3 s of CPU, says so, and waits to be stopped.
CHILD = BURN + 'burn(0.3)\nprint("child burnt", flush=True)\nsignal.pause()\n'
# A parent that, once told to (a line on stdin), starts that child (which shares its
# stdout) and burns 0.2 s itself.
PARENT = (
    BURN
    + """
sys.stdin.readline()
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
burn(0.2)
print("parent burnt", flush=True)
child.wait()
"""
)


def test_the_tree_is_looked_for_at_start_and_stop_and_counts_a_child_born_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    searches: list[float] = []
    find_tree = harness.tree_processes

    def counted_find_tree(*args: object) -> list[psutil.Process]:
        searches.append(time.monotonic())
        return find_tree(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(harness, "tree_processes", counted_find_tree)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert parent.stdin is not None and parent.stdout is not None
    try:
        sampler = TreeSampler([parent.pid], interval_s=0.02).start()
        parent.stdin.write("go\n")
        parent.stdin.flush()
        said = {parent.stdout.readline().strip() for _ in range(2)}
        assert said == {"parent burnt", "child burnt"}
        usage = sampler.stop()
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert len(searches) == 2  # start and stop, however many samples lay between
    # The child, born inside the window and found at stop(), counts with its whole burn.
    assert usage.processes == 2
    window_s = searches[1] - searches[0]
    assert len(usage.top) == 2
    assert min(cpu for _, cpu in usage.top) >= 0.18 / window_s * 100
