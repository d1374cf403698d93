"""Tuning helpers: recorded replays become scoreable strokes; the labelled set agrees."""

from __future__ import annotations

from typing import Any

from inkstep.lessons import Canvas
from scoring import score_step
from scoring.synthetic import draw_step, example_step
from scoring.tuning import pass_agreement, replay_strokes


def _events(step_id: str, strokes: list[dict[str, Any]], seq: int = 1) -> list[dict[str, Any]]:
    """stroke_append events in batches of 8 points, as a session log records them."""
    events = []
    for stroke in strokes:
        points = stroke["points"]
        for start in range(0, len(points), 8):
            events.append(
                {
                    "session_id": "abc",
                    "seq": seq,
                    "step_id": step_id,
                    "type": "stroke_append",
                    "client_op_id": f"{stroke['stroke_id']}-{start}",
                    "payload": {
                        "stroke_id": stroke["stroke_id"],
                        "layer": "main",
                        "style": stroke["style"],
                        "points": points[start : start + 8],
                        "final": start + 8 >= len(points),
                    },
                }
            )
            seq += 1
    return events


def test_replayed_batches_rebuild_the_strokes_and_score_the_same() -> None:
    step = example_step("circle")
    strokes = draw_step(step)
    events = _events(step.id, strokes)
    events.reverse()  # order comes from seq, not from file order
    rebuilt = replay_strokes(events)[step.id]
    assert [s["points"] for s in rebuilt] == [s["points"] for s in strokes]
    canvas = Canvas(width=800, height=600)
    assert (
        score_step(step, canvas, rebuilt).to_payload()
        == score_step(step, canvas, strokes).to_payload()
    )


def test_undone_strokes_come_back_deleted_and_redo_restores_them() -> None:
    step = example_step("line")
    events = _events(step.id, draw_step(step))
    target = events[0]["payload"]["stroke_id"]
    undo = {"seq": 1000, "type": "undo", "payload": {"target": target}}
    assert replay_strokes([*events, undo])[step.id][0]["deleted"] is True
    redo = {"seq": 1001, "type": "redo", "payload": {"target": target}}
    assert replay_strokes([*events, undo, redo])[step.id][0]["deleted"] is False


def test_pass_agreement_is_balanced_accuracy() -> None:
    rows = [
        {"should_pass": True, "passed": True},
        {"should_pass": True, "passed": False},
        {"should_pass": False, "passed": False},
        {"should_pass": None, "passed": True},
    ]
    assert pass_agreement(rows) == 0.75
