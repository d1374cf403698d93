"""SessionCore: the whole per-session state machine, with no Ray, no I/O and no clock.

Every change is an event: `decide()` checks an op against the state and answers with the
event it would produce (or a refusal / duplicate-ack) without changing anything; `apply()`
changes the state by one event. The live actor and a replay from the log call the same
`apply()`, so a rebuilt session equals the live one.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import zstandard

from actors.crdt import SessionDoc
from actors.stroke_json import FinalStrokeTexts, KeptStrokeArray
from inkstep.lessons import Lesson
from inkstep.protocol import FrameError, check_in_canvas

SERVER = "server"
STATE_FORMAT = 1


@dataclass(frozen=True)
class Accepted:
    """The op becomes this event once it is stored in the log."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """The op was applied before; `seq` is the event it produced then."""

    client_op_id: str
    seq: int


@dataclass(frozen=True)
class Refused:
    """The op is refused and changes nothing."""

    code: str
    message: str
    client_op_id: str | None


@dataclass(frozen=True)
class ScoreRequest:
    """A learner asks for a step to be scored; the score comes back through `decide_score`."""

    user_id: str
    step_id: str
    client_op_id: str
    strokes: list[dict[str, Any]]


Decision = Accepted | Duplicate | Refused | ScoreRequest


@dataclass
class Participant:
    user_id: str
    role: str
    connections: set[str] = field(default_factory=set)


class SessionCore:
    """Orders, deduplicates and applies every event of one session."""

    def __init__(self, session_id: str, lesson: Lesson) -> None:
        self.session_id = session_id
        self.lesson = lesson
        self.last_seq = 0
        self.step_id = lesson.steps[0].id
        self.strokes: dict[str, dict[str, Any]] = {}
        self.stroke_texts = FinalStrokeTexts()  # derived from `strokes`, for snapshots
        self.stroke_array = KeptStrokeArray(self.stroke_texts)  # the same, for snapshots
        self.layers: dict[str, dict[str, Any]] = {}
        self.layer_owners: dict[str, str] = {}
        self.participants: dict[str, Participant] = {}
        self.scores: list[dict[str, Any]] = []
        self.applied_ops: dict[tuple[str, str], int] = {}
        # The Doc is built when first read, from a checkpoint's update or empty: decoding a
        # big session's update is a quarter of a restart's rebuild.
        self._doc: SessionDoc | None = None
        self._doc_update: bytes | None = None
        # Events applied to the mirror but not yet to the Doc: the Doc is brought up to date
        # a few hundred events at a time (off the op path, see SessionRunner) and when it is
        # read, not once per event, which would cost more than everything else an event does.
        self._doc_backlog: list[dict[str, Any]] = []

    # ---- deciding -------------------------------------------------------------------

    def decide(self, user_id: str, role: str, op: dict[str, Any], ts_ms: int) -> Decision:
        """What a validated client op would do; nothing changes until `apply()`."""
        op_id: str = op["client_op_id"]
        if (seq := self.applied_ops.get((user_id, op_id))) is not None:
            return Duplicate(op_id, seq)
        if role == "viewer":
            return Refused("forbidden", "viewers cannot change the session", op_id)
        kind = op["type"]
        try:
            if kind == "stroke_append":
                return self._decide_stroke(user_id, op, ts_ms)
            if kind in ("undo", "redo"):
                return self._decide_tombstone(user_id, role, op, ts_ms)
            if kind == "layer_set":
                return self._decide_layer(user_id, role, op, ts_ms)
            if kind == "step_change":
                return self._decide_step_change(user_id, role, op, ts_ms)
            if kind == "step_complete":
                return self._decide_step_complete(user_id, op)
        except FrameError as exc:
            return Refused(exc.code, exc.message, op_id)
        return Refused("invalid", f"unknown op type {kind!r}", op_id)

    def _event(
        self, kind: str, step_id: str, op_id: str | None, author: str, ts_ms: int,
        payload: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "type": kind,
            "session_id": self.session_id,
            "seq": self.last_seq + 1,
            "step_id": step_id,
            "client_op_id": op_id,
            "author": author,
            "ts_server": ts_ms,
            "payload": payload,
        }

    def _decide_stroke(self, user_id: str, op: dict[str, Any], ts_ms: int) -> Decision:
        op_id, step_id, payload = op["client_op_id"], op["step_id"], op["payload"]
        if self.lesson.step(step_id) is None:
            raise FrameError("invalid", f"unknown step {step_id!r}")
        canvas = self.lesson.canvas
        check_in_canvas(payload["points"], canvas.width, canvas.height)
        stroke = self.strokes.get(payload["stroke_id"])
        if stroke is None:
            if payload["stroke_id"] != op_id:
                raise FrameError(
                    "invalid",
                    f"unknown stroke {payload['stroke_id']!r}: a new stroke's stroke_id "
                    "must be the client_op_id of its first batch",
                )
            if step_id != self.step_id:
                raise FrameError(
                    "invalid", f"step {step_id!r} is not the current step {self.step_id!r}"
                )
        else:
            if stroke["author"] != user_id:
                raise FrameError("forbidden", f"stroke {stroke['stroke_id']!r} is not yours")
            if stroke["final"]:
                raise FrameError("invalid", f"stroke {stroke['stroke_id']!r} is already final")
            if stroke["step_id"] != step_id or stroke["layer"] != payload["layer"]:
                raise FrameError(
                    "invalid", "a stroke's later batches must keep its step_id and layer"
                )
        return Accepted(self._event("stroke_append", step_id, op_id, user_id, ts_ms, payload))

    def _decide_tombstone(
        self, user_id: str, role: str, op: dict[str, Any], ts_ms: int
    ) -> Decision:
        target = op["payload"]["target"]
        stroke = self.strokes.get(target)
        if stroke is None:
            raise FrameError("invalid", f"unknown stroke {target!r}")
        if stroke["author"] != user_id and role != "teacher":
            raise FrameError(
                "forbidden", f"only its author or a teacher may {op['type']} stroke {target!r}"
            )
        return Accepted(
            self._event(
                op["type"], stroke["step_id"], op["client_op_id"], user_id, ts_ms,
                {"target": target},
            )
        )  # fmt: skip

    def _decide_layer(self, user_id: str, role: str, op: dict[str, Any], ts_ms: int) -> Decision:
        layer = op["payload"]["layer"]
        props = {k: v for k, v in op["payload"]["props"].items() if v is not None}
        if not props:
            raise FrameError("invalid", "layer_set needs at least one prop")
        owner = self.layer_owners.get(layer)
        if role != "teacher" and owner is not None and owner != user_id:
            raise FrameError("forbidden", f"layer {layer!r} belongs to another participant")
        payload = {"layer": layer, "props": props}
        return Accepted(
            self._event("layer_set", self.step_id, op["client_op_id"], user_id, ts_ms, payload)
        )

    def _decide_step_change(
        self, user_id: str, role: str, op: dict[str, Any], ts_ms: int
    ) -> Decision:
        if role != "teacher":
            raise FrameError("forbidden", "only a teacher may change the step")
        to_step = op["payload"]["to_step"]
        if self.lesson.step(to_step) is None:
            raise FrameError("invalid", f"unknown step {to_step!r}")
        if to_step == self.step_id:
            raise FrameError("invalid", f"the session is already on step {to_step!r}")
        payload = {"from_step": self.step_id, "to_step": to_step, "reason": "teacher"}
        return Accepted(
            self._event("step_change", to_step, op["client_op_id"], user_id, ts_ms, payload)
        )

    def _decide_step_complete(self, user_id: str, op: dict[str, Any]) -> Decision:
        step_id = op["step_id"]
        if step_id != self.step_id:
            raise FrameError(
                "invalid", f"step {step_id!r} is not the current step {self.step_id!r}"
            )
        strokes = [
            s for s in self.strokes.values()
            if s["author"] == user_id and s["step_id"] == step_id and not s["deleted"]
        ]  # fmt: skip
        return ScoreRequest(user_id, step_id, op["client_op_id"], strokes)

    def decide_score(
        self, request: ScoreRequest, score: dict[str, Any], ts_ms: int
    ) -> list[dict[str, Any]]:
        """The events a finished score produces: score_update, then step_change if it passed."""
        if (request.user_id, request.client_op_id) in self.applied_ops:
            return []
        payload = {"user_id": request.user_id, "step_id": request.step_id, **score}
        update = self._event(
            "score_update", request.step_id, request.client_op_id, SERVER, ts_ms, payload
        )
        events = [update]
        next_step = self._next_step(request.step_id)
        if score.get("passed") and request.step_id == self.step_id and next_step is not None:
            change = {"from_step": request.step_id, "to_step": next_step, "reason": "passed"}
            event = self._event("step_change", next_step, None, SERVER, ts_ms, change)
            event["seq"] += 1
            events.append(event)
        return events

    def _next_step(self, step_id: str) -> str | None:
        ids = [s.id for s in self.lesson.steps]
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None

    def decide_join(
        self, user_id: str, role: str, connection: str, ts_ms: int
    ) -> dict[str, Any] | None:
        """A `participant joined` event when the user was not connected yet.

        A second connection of a user already present only adds to its connection set,
        which is not logged: the participant list is what the log keeps.
        """
        current = self.participants.get(user_id)
        if current is not None and current.connections:
            current.connections.add(connection)
            return None
        payload = {"user_id": user_id, "role": role, "state": "joined", "connection": connection}
        return self._event("participant", self.step_id, None, SERVER, ts_ms, payload)

    def decide_leave(self, user_id: str, connection: str, ts_ms: int) -> dict[str, Any] | None:
        """A `participant left` event when the user's last connection closes."""
        current = self.participants.get(user_id)
        if current is None or not current.connections:
            return None
        if current.connections - {connection}:
            current.connections.discard(connection)
            return None
        payload = {
            "user_id": user_id, "role": current.role, "state": "left", "connection": connection,
        }  # fmt: skip
        return self._event("participant", self.step_id, None, SERVER, ts_ms, payload)

    # ---- applying -------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        """Change the state by one event; events must come in seq order."""
        seq = event["seq"]
        if seq != self.last_seq + 1:
            raise ValueError(f"event seq {seq} does not follow {self.last_seq}")
        self.last_seq = seq
        author, op_id = event["author"], event["client_op_id"]
        if op_id is not None:
            owner = event["payload"]["user_id"] if event["type"] == "score_update" else author
            self.applied_ops[(owner, op_id)] = seq
        getattr(self, f"_apply_{event['type']}")(event)
        self._doc_backlog.append(event)

    def _apply_stroke_append(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        stroke = self.strokes.get(payload["stroke_id"])
        if stroke is None:
            stroke = {
                "stroke_id": payload["stroke_id"],
                "author": event["author"],
                "step_id": event["step_id"],
                "layer": payload["layer"],
                "style": payload["style"],
                "points": [list(p) for p in payload["points"]],
                "final": payload["final"],
                "deleted": False,
            }
            self.strokes[stroke["stroke_id"]] = stroke
            self.layer_owners.setdefault(payload["layer"], event["author"])
            self.stroke_array.add(stroke)
        else:
            stroke["points"].extend(list(p) for p in payload["points"])
            if payload["final"]:
                stroke["final"] = True
                self.stroke_array.finalized(stroke)

    def _apply_undo(self, event: dict[str, Any]) -> None:
        self._set_deleted(event["payload"]["target"], True)

    def _apply_redo(self, event: dict[str, Any]) -> None:
        self._set_deleted(event["payload"]["target"], False)

    def _set_deleted(self, target: str, deleted: bool) -> None:
        stroke = self.strokes[target]
        stroke["deleted"] = deleted
        self.stroke_array.changed(stroke)

    def _apply_layer_set(self, event: dict[str, Any]) -> None:
        layer, props = event["payload"]["layer"], event["payload"]["props"]
        self.layers.setdefault(layer, {}).update(props)
        self.layer_owners.setdefault(layer, event["author"])

    def _apply_step_change(self, event: dict[str, Any]) -> None:
        self.step_id = event["payload"]["to_step"]

    def _apply_score_update(self, event: dict[str, Any]) -> None:
        self.scores.append({"seq": event["seq"], **event["payload"]})

    def _apply_participant(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        user_id, connection = payload["user_id"], payload.get("connection", "")
        if payload["state"] == "joined":
            current = self.participants.setdefault(user_id, Participant(user_id, payload["role"]))
            current.role = payload["role"]
            current.connections.add(connection)
        elif user_id in self.participants:
            self.participants[user_id].connections.clear()

    # ---- the Yjs document -----------------------------------------------------------

    @property
    def doc(self) -> SessionDoc:
        if self._doc is None:
            if self._doc_update is not None:
                self._doc, self._doc_update = SessionDoc.decode(self._doc_update), None
            else:
                self._doc = SessionDoc()
                self._doc.set_step(self.lesson.steps[0].id, 0)
        return self._doc

    def take_doc_backlog(self) -> list[dict[str, Any]]:
        """The events applied since the Doc was last brought up to date, handed over to
        `doc_update_with` (which may run on another thread, one call at a time, in order)."""
        backlog, self._doc_backlog = self._doc_backlog, []
        return backlog

    def doc_backlog_size(self) -> int:
        return len(self._doc_backlog)

    def apply_doc_backlog(self, backlog: list[dict[str, Any]]) -> None:
        """Bring the Doc up to date with `backlog` (a `take_doc_backlog` answer), in order."""
        self.doc.apply_events(backlog)

    def doc_update_with(self, backlog: list[dict[str, Any]]) -> bytes:
        """Bring the Doc up to date with `backlog`; the whole Doc as one Yjs update."""
        if not backlog and self._doc_update is not None:
            return self._doc_update  # unchanged since the checkpoint: no need to decode it
        self.doc.apply_events(backlog)
        return self.doc.encode()

    def synced_doc(self) -> SessionDoc:
        """The pycrdt Doc with every applied event in it."""
        self.doc_update_with(self.take_doc_backlog())
        return self.doc

    # ---- reading --------------------------------------------------------------------

    def has_participants(self) -> bool:
        return any(p.connections for p in self.participants.values())

    def participant_list(self) -> list[dict[str, Any]]:
        return [
            {"user_id": p.user_id, "role": p.role}
            for p in self.participants.values()
            if p.connections
        ]

    def snapshot(self) -> dict[str, Any]:
        """The `session_snapshot` frame: the state after event `last_seq`."""
        return {
            "type": "session_snapshot",
            "session_id": self.session_id,
            "seq": self.last_seq,
            "step_id": self.step_id,
            "payload": {
                "lesson": self.lesson.summary(),
                "participants": self.participant_list(),
                "layers": self.layers,
                "strokes": list(self.strokes.values()),
                "scores": self.scores,
            },
        }

    def strokes_json(self) -> list[bytes]:
        """The snapshot's strokes as the pieces of one JSON array (`KeptStrokeArray`)."""
        return self.stroke_array.parts()

    # ---- whole-state export ---------------------------------------------------------

    def export_state(self) -> bytes:
        """Everything, as bytes: the mirror (JSON, compressed) followed by the Yjs update."""
        mirror, backlog = self.export_parts()
        return pack_state(mirror, self.doc_update_with(backlog))

    def export_parts(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The mirror as it is now and the Doc backlog that brings the Doc to the same seq.

        The mirror is a copy later events leave alone, taken without encoding anything new:
        a final stroke is its kept JSON text, and a point is never changed once appended, so
        the point list of a stroke still being drawn is sliced rather than copied deeply.
        Encoding, compressing and the Doc half, the slow parts, can then be done off the op
        path (`pack_state`)."""
        mirror = {
            "format": STATE_FORMAT,
            "session_id": self.session_id,
            "lesson": self.lesson.to_json_dict(),
            "last_seq": self.last_seq,
            "step_id": self.step_id,
            "strokes": [self._stroke_copy(s) for s in self.strokes.values()],
            "layers": {name: dict(props) for name, props in self.layers.items()},
            "layer_owners": dict(self.layer_owners),
            "participants": [
                {"user_id": p.user_id, "role": p.role, "connections": sorted(p.connections)}
                for p in self.participants.values()
            ],
            "scores": list(self.scores),
            "applied_ops": [[u, o, s] for (u, o), s in self.applied_ops.items()],
        }
        return mirror, self.take_doc_backlog()

    def _stroke_copy(self, stroke: dict[str, Any]) -> Any:
        text = self.stroke_texts.kept(stroke)
        return (
            orjson.Fragment(text) if text is not None else {**stroke, "points": stroke["points"][:]}
        )

    @classmethod
    def import_state(cls, data: bytes) -> SessionCore:
        size = int.from_bytes(data[:8], "big")
        mirror = orjson.loads(_decompress_mirror(data[8 : 8 + size]))
        if mirror.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown session state format {mirror.get('format')!r}")
        core = cls(mirror["session_id"], Lesson.model_validate(mirror["lesson"]))
        core.last_seq = mirror["last_seq"]
        core.step_id = mirror["step_id"]
        core.strokes = {s["stroke_id"]: s for s in mirror["strokes"]}
        core.stroke_array.restore(core.strokes.values())
        core.layers = mirror["layers"]
        core.layer_owners = mirror["layer_owners"]
        core.participants = {
            p["user_id"]: Participant(p["user_id"], p["role"], set(p["connections"]))
            for p in mirror["participants"]
        }
        core.scores = mirror["scores"]
        core.applied_ops = {(u, o): s for u, o, s in mirror["applied_ops"]}
        core._doc_update = data[8 + size :]
        return core

    def state_dict(self) -> dict[str, Any]:
        """A comparable view of the whole state (for tests and consistency checks)."""
        return {
            "last_seq": self.last_seq,
            "step_id": self.step_id,
            "strokes": self.strokes,
            "layers": self.layers,
            "participants": self.participant_list(),
            "scores": self.scores,
            "applied_ops": self.applied_ops,
        }


# The mirror is compressed with zstd at level 1: on stroke JSON ~3-5x faster than zlib at
# level 1 (8.8 against 29.9 ms for 2.1 MB) and a little smaller; it lets go of the GIL too.
MIRROR_ZSTD_LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# Strokes encoded and compressed per piece of a checkpoint, between two of its rests.
STROKES_PER_PIECE = 200


def pack_state(
    mirror: dict[str, Any], doc_update: bytes, rest: Callable[[], None] | None = None
) -> bytes:
    """A checkpoint's bytes: the compressed mirror's length, the mirror, the Yjs update.

    The mirror is encoded and compressed a piece at a time, with `rest` called after each,
    so a paced checkpoint can give the CPU back between pieces."""
    compressor = zstandard.ZstdCompressor(level=MIRROR_ZSTD_LEVEL).compressobj()
    packed: list[bytes] = []
    for piece in mirror_json_pieces(mirror):
        packed.append(compressor.compress(piece))
        if rest is not None:
            rest()
    packed.append(compressor.flush())
    body = b"".join(packed)
    return len(body).to_bytes(8, "big") + body + doc_update


def _decompress_mirror(packed: bytes) -> bytes:
    """zstd, or zlib in checkpoints written before zstd was used. A frame compressed a
    piece at a time does not say its size up front: decompress it as a stream."""
    if packed.startswith(ZSTD_MAGIC):
        out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(packed)
        return out
    return zlib.decompress(packed)


def encode_mirror(mirror: dict[str, Any]) -> bytes:
    """The mirror as JSON."""
    return b"".join(mirror_json_pieces(mirror))


def mirror_json_pieces(mirror: dict[str, Any]) -> Iterator[bytes]:
    """The mirror as JSON, in pieces of STROKES_PER_PIECE strokes, a stroke per call: one call
    for everything held the GIL (and the session's op thread) for ~10 ms per 2000 events."""
    rest = orjson.dumps({key: value for key, value in mirror.items() if key != "strokes"})
    separator = b"," if rest != b"{}" else b""
    yield rest[:-1] + separator + b'"strokes":['
    strokes = mirror["strokes"]
    for start in range(0, len(strokes), STROKES_PER_PIECE):
        piece = b",".join(
            [orjson.dumps(stroke) for stroke in strokes[start : start + STROKES_PER_PIECE]]
        )
        yield (b"," + piece) if start else piece
    yield b"]}"
