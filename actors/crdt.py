"""The session's shared state as a pycrdt (Yjs) document, readable by any Yjs client."""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map


class SessionDoc:
    """Strokes, layers and the current step in a pycrdt Doc.

    Writes are incremental (one small transaction per event); reads for snapshots and
    scoring come from the plain-Python mirror in SessionCore, because converting the whole
    Doc to Python is slow for large sessions.
    """

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.meta: Map[Any] = self.doc.get("meta", type=Map)
        self.layers: Map[Any] = self.doc.get("layers", type=Map)
        self.strokes: Map[Any] = self.doc.get("strokes", type=Map)

    def set_step(self, step_id: str, seq: int) -> None:
        with self.doc.transaction():
            self.meta["step_id"] = step_id
            self.meta["last_seq"] = seq

    def set_seq(self, seq: int) -> None:
        self.meta["last_seq"] = seq

    def add_stroke(self, stroke: dict[str, Any]) -> None:
        with self.doc.transaction():
            self.strokes[stroke["stroke_id"]] = Map(
                {
                    "author": stroke["author"],
                    "step_id": stroke["step_id"],
                    "layer": stroke["layer"],
                    "style": Map(dict(stroke["style"])),
                    "points": Array([list(p) for p in stroke["points"]]),
                    "final": stroke["final"],
                    "deleted": stroke["deleted"],
                }
            )

    def append_points(self, stroke_id: str, points: list[list[float]], final: bool) -> None:
        with self.doc.transaction():
            stroke = self.strokes[stroke_id]
            stroke["points"].extend([list(p) for p in points])
            if final:
                stroke["final"] = True

    def set_deleted(self, stroke_id: str, deleted: bool) -> None:
        self.strokes[stroke_id]["deleted"] = deleted

    def set_layer_props(self, layer: str, props: dict[str, Any]) -> None:
        with self.doc.transaction():
            if layer not in self.layers:
                self.layers[layer] = Map(dict(props))
            else:
                target = self.layers[layer]
                for key, value in props.items():
                    target[key] = value

    def encode(self) -> bytes:
        """The whole document as one Yjs update."""
        update: bytes = self.doc.get_update()
        return update

    @classmethod
    def decode(cls, update: bytes) -> SessionDoc:
        session_doc = cls()
        session_doc.doc.apply_update(update)
        return session_doc
