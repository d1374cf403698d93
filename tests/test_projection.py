"""Which of a session's events become Postgres rows, picked out on the session thread."""

from __future__ import annotations

from typing import Any

from actors.core import Accepted, ScoreRequest, SessionCore
from actors.projection import projected
from tests.test_core import LESSON, stroke_op, target_op


def accepted(core: SessionCore, user: str, role: str, op: dict[str, Any]) -> dict[str, Any]:
    decision = core.decide(user, role, op, ts_ms=1000 + core.last_seq)
    assert isinstance(decision, Accepted), decision
    core.apply(decision.event)
    return decision.event


def test_only_participants_scores_and_step_changes_are_projected_in_order() -> None:
    core = SessionCore("sess1", LESSON)
    events = []
    for user, role, connection in (("tea", "teacher", "c1"), ("ann", "student", "c2")):
        joined = core.decide_join(user, role, connection, ts_ms=1)
        assert joined is not None
        core.apply(joined)
        events.append(joined)
    events.append(accepted(core, "ann", "student", stroke_op("o1", final=True)))
    events.append(accepted(core, "ann", "student", target_op("undo", "o2", "o1")))
    layer = {"type": "layer_set", "client_op_id": "o3",
             "payload": {"layer": "ink", "props": {"opacity": 0.5}}}  # fmt: skip
    events.append(accepted(core, "ann", "student", layer))
    complete = {"type": "step_complete", "client_op_id": "o4", "step_id": "s1"}
    request = core.decide("ann", "student", complete, 5)
    assert isinstance(request, ScoreRequest)
    score = {"accuracy": 91.0, "quality": 80.0, "passed": True, "details": {}}
    for event in core.decide_score(request, score, 6):  # a score, then the step it passed
        core.apply(event)
        events.append(event)
    change = {"type": "step_change", "client_op_id": "o5", "payload": {"to_step": "s3"}}
    events.append(accepted(core, "tea", "teacher", change))
    left = core.decide_leave("ann", "c2", ts_ms=2)
    assert left is not None
    events.append(left)

    rows = projected(events)
    assert [e["type"] for e in rows] == ["participant", "participant", "score_update",
                                         "step_change", "step_change", "participant"]  # fmt: skip
    assert [e["seq"] for e in rows] == sorted(e["seq"] for e in rows)
    assert {e["type"] for e in events} - {e["type"] for e in rows} == {
        "stroke_append", "undo", "layer_set"}  # fmt: skip
    assert projected([e for e in events if e not in rows]) == []
