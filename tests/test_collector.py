"""The session actor's collector policy, in a fresh interpreter (it changes global state)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from actors.session_actor import _tune_collector
_tune_collector()
gc.collect()
frozen_before = gc.get_freeze_count()
points = [[float(i), 1.0] for i in range(5_000)]  # a session's long-lived small objects
gc.collect(0)
print(gc.get_threshold()[0], gc.get_freeze_count() - frozen_before, len(gc.get_objects(1)))
"""


def test_what_survives_a_young_collection_is_frozen_and_never_rescanned() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    young, newly_frozen, middle_generation = map(int, result.stdout.split())
    assert young == 2_000
    assert newly_frozen >= 5_000  # every point list survived, and is out of the collector's way
    assert middle_generation == 0  # nothing waits to be scanned by the next middle collection
