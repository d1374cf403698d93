"""The JSON text of every final stroke, encoded once.

A final stroke never changes again but for its `deleted` flag (undo, redo), so its text is
kept with the flag it was encoded with. Snapshots and checkpoints splice the kept texts in
rather than encoding every point of the session again. For 10k strokes of 20 points, here:
a snapshot's strokes 34 → 6 ms, a checkpoint's mirror 38 → 10 ms, and the copy of the
mirror taken under the session lock 15 → 3 ms; keeping a stroke's text costs ~3 µs once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

Stroke = dict[str, Any]


class FinalStrokeTexts:
    """Kept texts by stroke_id; only ever read and written by whoever holds the session."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[bool, bytes]] = {}

    def remember(self, stroke: Stroke) -> None:
        """Encode a stroke that has just become final."""
        self._texts[stroke["stroke_id"]] = (stroke["deleted"], orjson.dumps(stroke))

    def kept(self, stroke: Stroke) -> bytes | None:
        """The stroke's text as it is now, if one is kept."""
        kept = self._texts.get(stroke["stroke_id"])
        if kept is None or kept[0] != stroke["deleted"]:
            return None
        return kept[1]

    def text(self, stroke: Stroke) -> bytes:
        """The stroke's text: the kept one, else encoded now (and kept, when final)."""
        kept = self.kept(stroke)
        if kept is not None:
            return kept
        text = orjson.dumps(stroke)
        if stroke["final"]:
            self._texts[stroke["stroke_id"]] = (stroke["deleted"], text)
        return text

    def array(self, strokes: Iterable[Stroke]) -> bytes:
        """A JSON array of the strokes."""
        return b"[" + b",".join([self.text(stroke) for stroke in strokes]) + b"]"
