"""The wire contract (docs/protocol.md) as pydantic models, plus strict frame parsing."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
MAX_POINTS_PER_BATCH = 512
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

OpId = Annotated[str, Field(pattern=ID_PATTERN)]
Name = Annotated[str, Field(pattern=ID_PATTERN)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Tool = Literal["pen", "pencil", "brush", "marker", "highlighter", "eraser"]
Role = Literal["teacher", "student", "viewer"]

ERROR_CODES = ("invalid", "forbidden", "rate_limited", "too_large", "unavailable")


class Strict(BaseModel):
    """Client frames: unknown fields, non-finite numbers and values of another JSON type
    (`"3"` or `true` for a number) are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class Hello(Strict):
    type: Literal["hello"]
    token: str = Field(min_length=1, max_length=4096)
    last_seq: int | None = Field(default=None, ge=0)
    client: str = Field(default="unknown", max_length=128)


class StrokeStyle(Strict):
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
    width: Finite = Field(gt=0, le=200)
    tool: Tool = "pen"


# [x, y, pressure, t_ms]
Point = tuple[Finite, Finite, Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0)]]


class StrokePayload(Strict):
    stroke_id: OpId
    layer: Name
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS_PER_BATCH)
    style: StrokeStyle
    final: bool = False


class StrokeAppendOp(Strict):
    type: Literal["stroke_append"]
    client_op_id: OpId
    step_id: Name
    payload: StrokePayload


class TargetPayload(Strict):
    target: OpId


class UndoOp(Strict):
    type: Literal["undo"]
    client_op_id: OpId
    payload: TargetPayload


class RedoOp(Strict):
    type: Literal["redo"]
    client_op_id: OpId
    payload: TargetPayload


class LayerProps(Strict):
    visible: bool | None = None
    opacity: Finite | None = Field(default=None, ge=0, le=1)
    z: int | None = Field(default=None, ge=-1000, le=1000)
    name: str | None = Field(default=None, max_length=64)
    locked: bool | None = None


class LayerSetPayload(Strict):
    layer: Name
    props: LayerProps


class LayerSetOp(Strict):
    type: Literal["layer_set"]
    client_op_id: OpId
    payload: LayerSetPayload


class StepCompleteOp(Strict):
    type: Literal["step_complete"]
    client_op_id: OpId
    step_id: Name


class StepChangePayload(Strict):
    to_step: Name


class StepChangeOp(Strict):
    type: Literal["step_change"]
    client_op_id: OpId
    payload: StepChangePayload


class PresencePayload(Strict):
    cursor: tuple[Finite, Finite] | None = None
    tool: str | None = Field(default=None, max_length=32)
    status: str | None = Field(default=None, max_length=64)


class PresenceMsg(Strict):
    type: Literal["presence"]
    payload: PresencePayload


class Ping(Strict):
    type: Literal["ping"]
    t: Finite | None = None


OrderedOp = StrokeAppendOp | UndoOp | RedoOp | LayerSetOp | StepCompleteOp | StepChangeOp
ClientFrame = Annotated[
    Hello | OrderedOp | PresenceMsg | Ping,
    Field(discriminator="type"),
]
_client_frame = TypeAdapter[Any](ClientFrame)


class FrameError(Exception):
    """A client frame that was refused; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str, client_op_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_op_id = client_op_id

    def to_frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.message, self.client_op_id)


def error_frame(code: str, message: str, client_op_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "client_op_id": client_op_id}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number")


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """Decode one frame; NaN/Infinity literals and non-objects are refused."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError("invalid", f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FrameError("invalid", "frame must be a JSON object")
    return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "frame"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_client_frame(text: str | bytes) -> Hello | OrderedOp | PresenceMsg | Ping:
    """Validate one client frame, raising FrameError with the right code when refused."""
    try:
        # Parsing and validating in one pass is the hot path of every op.
        frame: Hello | OrderedOp | PresenceMsg | Ping = _client_frame.validate_json(text)
        return frame
    except ValidationError as exc:
        refused = exc
    # Refused: decode it once more to name the problem (not JSON, not an object) and to
    # answer with its client_op_id.
    raw = parse_json_object(text)
    op_id = raw.get("client_op_id")
    op_id = op_id if isinstance(op_id, str) and len(op_id) <= 64 else None
    if any(e["type"] == "too_long" and "points" in e["loc"] for e in refused.errors()):
        raise FrameError("too_large", f"at most {MAX_POINTS_PER_BATCH} points per batch", op_id)
    raise FrameError("invalid", _describe(refused), op_id)


def check_in_canvas(points: list[list[float]], width: int, height: int) -> None:
    """Refuse points far outside the canvas (more than one canvas size beyond an edge)."""
    for point in points:  # indexing, not `x, y, *_ =`: that builds a list per point
        x, y = point[0], point[1]
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            raise FrameError(
                "invalid", f"point ({x}, {y}) is far outside the {width}x{height} canvas"
            )


def op_to_json(op: OrderedOp) -> str:
    """The op as compact JSON, ready to forward to the session actor."""
    return op.model_dump_json()
