"""The benches' CPU sampler: it finds the measured processes at the window's edges only, and
counts every process that is there at either edge."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from inkstep.bench import harness
from inkstep.bench.harness import TreeSampler

BURN = """
import time
def burn(seconds):
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass
"""
# A child that burns 0.3 s of CPU, then waits to be stopped.
CHILD = BURN + "burn(0.3)\ntime.sleep(600)\n"
# A parent that, once told to (a file appears), starts that child and burns 0.2 s itself.
PARENT = (
    BURN
    + """
import subprocess, sys
from pathlib import Path
while not Path(sys.argv[1]).exists():
    time.sleep(0.01)
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
burn(0.2)
print("burnt", flush=True)
child.wait()
"""
)


def test_the_tree_is_looked_for_at_start_and_stop_and_counts_a_child_born_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches: list[float] = []
    find_tree = harness.tree_processes

    def counted_find_tree(*args: object) -> list[psutil.Process]:
        searches.append(time.monotonic())
        return find_tree(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(harness, "tree_processes", counted_find_tree)
    go = tmp_path / "go"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(go), CHILD],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        sampler = TreeSampler([parent.pid], interval_s=0.02).start()
        go.touch()
        assert parent.stdout is not None and parent.stdout.readline().strip() == "burnt"
        deadline = time.monotonic() + 10
        children = psutil.Process(parent.pid).children()
        while not children or sum(c.cpu_times().user + c.cpu_times().system
                                  for c in children) < 0.25:  # fmt: skip
            assert time.monotonic() < deadline, "the child never burnt its CPU"
            time.sleep(0.02)
            children = psutil.Process(parent.pid).children()
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
