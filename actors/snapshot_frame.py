"""`session_snapshot` frames, with the strokes' kept JSON spliced in.

A late joiner of a big session gets every point of every stroke: 6 MB of JSON for 10k
strokes, which took 55 to 130 ms to encode here under load. Final strokes are encoded once
(`FinalStrokeTexts`), so a snapshot encodes only the strokes still being drawn, and the
strokes' array is kept in blocks (`KeptStrokeArray`).
"""

from __future__ import annotations

from typing import Any

import orjson


def encode_snapshot(snapshot: dict[str, Any], strokes_json: list[bytes]) -> bytes:
    """The frame's JSON for a snapshot as `SessionCore.snapshot` returns it, given its
    strokes already encoded as one JSON array, in pieces (joined here, with the frame)."""
    payload = snapshot["payload"]
    frame = orjson.dumps({k: v for k, v in snapshot.items() if k != "payload"})
    rest = orjson.dumps({k: v for k, v in payload.items() if k != "strokes"})
    # One copy of the whole frame: {...,"payload":{...,"strokes":[...]}}
    return b"".join([
        _open(frame), b'"payload":', _open(rest), b'"strokes":', *strokes_json,
        b"}}",
    ])  # fmt: skip


def _open(obj: bytes) -> bytes:
    """A JSON object's text without its closing brace, ready for one more member."""
    return obj[:-1] + b"," if obj != b"{}" else b"{"
