"""Client frames as the protocol's models read them: what passes, and the error for what not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inkstep.protocol import (
    MAX_POINTS_PER_BATCH,
    FrameError,
    Hello,
    LayerSetOp,
    StrokeAppendOp,
    parse_client_frame,
)


def stroke(points: list[Any], **payload: Any) -> dict[str, Any]:
    style = {"color": "#112233", "width": 2, "tool": "pen"}
    return {"type": "stroke_append", "client_op_id": "op1", "step_id": "s1",
            "payload": {"stroke_id": "op1", "layer": "ink", "points": points, "style": style,
                        **payload}}  # fmt: skip


def refusal(frame: dict[str, Any] | str) -> FrameError:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    with pytest.raises(FrameError) as refused:
        parse_client_frame(text)
    return refused.value


def test_well_formed_frames_parse_whole_numbers_included() -> None:
    hello = parse_client_frame('{"type": "hello", "token": "t", "last_seq": 3}')
    assert isinstance(hello, Hello) and hello.last_seq == 3
    # Whole numbers where the protocol has decimals: JSON does not tell 2 from 2.0.
    op = parse_client_frame(json.dumps(stroke([[10, 20, 1, 0], [11.5, 20.25, 0.5, 16]])))
    assert isinstance(op, StrokeAppendOp) and op.payload.points[0] == (10.0, 20.0, 1.0, 0.0)
    layer = {"type": "layer_set", "client_op_id": "op2",
             "payload": {"layer": "ink", "props": {"opacity": 1, "visible": False}}}  # fmt: skip
    assert isinstance(parse_client_frame(json.dumps(layer)), LayerSetOp)


@pytest.mark.parametrize("last_seq", ["3", True, 1.5, -1])
def test_a_hello_last_seq_must_be_a_whole_number_of_zero_or_more(last_seq: Any) -> None:
    error = refusal({"type": "hello", "token": "t", "last_seq": last_seq})
    assert error.code == "invalid" and "last_seq" in error.message


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        (stroke([["10", 20, 1, 0]]), "points"),
        (stroke([[10, 20, 1, 0]], final="yes"), "final"),
        (stroke([[10, 20, 1, 0]], final=1), "final"),
        ({"type": "layer_set", "client_op_id": "op2",
          "payload": {"layer": "ink", "props": {"z": "3"}}}, "z"),
        ({"type": "ping", "t": "12"}, "t"),
    ],
)  # fmt: skip
def test_a_value_of_another_json_type_is_refused_with_its_client_op_id(
    frame: dict[str, Any], where: str
) -> None:
    error = refusal(frame)
    assert error.code == "invalid" and where in error.message
    assert error.client_op_id == frame.get("client_op_id")


def test_refusals_name_the_problem() -> None:
    assert "not valid JSON" in refusal('{"type": "ping", "t": NaN}').message
    assert "not valid JSON" in refusal("{oops").message
    assert "JSON object" in refusal("[1, 2]").message
    assert "Extra inputs" in refusal({"type": "ping", "extra": 1}).message
    too_many = refusal(stroke([[1, 1, 1, 0]] * (MAX_POINTS_PER_BATCH + 1)))
    assert (too_many.code, too_many.client_op_id) == ("too_large", "op1")
