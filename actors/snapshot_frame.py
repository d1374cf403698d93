"""`session_snapshot` frames that reuse the strokes' JSON while no stroke has changed.

A late joiner of a big session gets every point of every stroke: 6 MB of JSON for 10k
strokes, 55 to 130 ms to encode here. Each join is itself an event, so the next joiner
cannot reuse the previous frame; but joins come in bursts (a class arriving), when strokes
change little, so the strokes' part is kept while every stroke's length, `final` and
`deleted` stay the same.
"""

from __future__ import annotations

from typing import Any

import orjson


class SnapshotFrames:
    """Encodes snapshots (as `SessionCore.snapshot` returns them) to the frame's JSON."""

    def __init__(self) -> None:
        self._versions: list[tuple[str, int, bool, bool]] = []
        self._strokes_json = b"[]"

    def encode(self, snapshot: dict[str, Any]) -> bytes:
        payload = snapshot["payload"]
        strokes = payload["strokes"]
        versions = [(s["stroke_id"], len(s["points"]), s["final"], s["deleted"]) for s in strokes]
        if versions != self._versions:
            self._versions, self._strokes_json = versions, orjson.dumps(strokes)
        frame = orjson.dumps({k: v for k, v in snapshot.items() if k != "payload"})
        rest = orjson.dumps({k: v for k, v in payload.items() if k != "strokes"})
        # One copy of the whole frame: {...,"payload":{...,"strokes":[...]}}
        return b"".join([
            _open(frame), b'"payload":', _open(rest), b'"strokes":', self._strokes_json, b"}}",
        ])  # fmt: skip


def _open(obj: bytes) -> bytes:
    """A JSON object's text without its closing brace, ready for one more member."""
    return obj[:-1] + b"," if obj != b"{}" else b"{"
