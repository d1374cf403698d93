"""How the Python client parses a big frame: in a fresh interpreter (it moves the collector's
objects between generations, which is global state)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, orjson
from inkstep.client import decode_frame

strokes = [{"stroke_id": f"s{i}", "points": [[float(i), 1.0, 0.5, j] for j in range(20)]}
           for i in range(2_000)]
text = orjson.dumps({"type": "session_snapshot", "seq": 1, "payload": {"strokes": strokes}})
del strokes
gc.collect()

frame = decode_frame(text.decode())
points = frame["payload"]["strokes"][-1]["points"]
young = {id(o) for generation in (0, 1) for o in gc.get_objects(generation)}
plain = {"enabled": gc.isenabled(), "points_young": id(points) in young,
         "young_count": gc.get_count()[0], "frozen": gc.get_freeze_count(),
         "same": frame == orjson.loads(text)}

kept_frozen = [[1.0] for _ in range(100)]
gc.freeze()
frozen_before = gc.get_freeze_count()
decode_frame(text)
plain["frozen_kept"] = gc.get_freeze_count() == frozen_before
print(json.dumps(plain))
"""


def test_a_big_frame_is_parsed_straight_into_the_oldest_generation() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(result.stdout)
    assert seen["same"]  # the frame as parsed by orjson itself
    assert seen["enabled"]  # the collector runs again afterwards
    assert not seen["points_young"]  # no young-generation pass will rescan the snapshot
    assert seen["young_count"] < 100
    assert seen["frozen"] == 0  # nothing left out of the collector's sight
    # A process that keeps objects frozen itself keeps exactly those frozen.
    assert seen["frozen_kept"]
