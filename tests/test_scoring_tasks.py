"""The Ray task the session actor submits: same answer as the plain function, in parallel."""

from __future__ import annotations

import pytest
import ray

from inkstep.lessons import Canvas
from scoring import ParamsError, ScoringParams, pack_strokes, score_step
from scoring.synthetic import Drawing, draw_step, example_step
from scoring.tasks import score_remote, score_step_json, score_step_task


def test_task_returns_the_payload_of_score_step(ray_address: str) -> None:
    canvas = Canvas(width=800, height=600)
    params = ScoringParams()
    cases = [
        (example_step(kind), draw_step(example_step(kind), drawing))
        for kind in ("circle", "polyline")
        for drawing in (Drawing(), Drawing(shift=(0.0, 30.0)))
    ]
    refs = [
        score_step_task.remote(
            step.model_dump_json(by_alias=True),
            canvas.model_dump_json(),
            pack_strokes(strokes),
            params.model_dump_json(),
        )
        for step, strokes in cases
    ]
    results = ray.get(refs)
    expected = [score_step(step, canvas, strokes, params).to_payload() for step, strokes in cases]
    assert results == expected
    assert [r["passed"] for r in results] == [True, False, True, False]


def test_plain_wrapper_validates_its_json() -> None:
    step = example_step("line")
    payload = score_step_json(
        step.model_dump_json(by_alias=True), '{"width": 800, "height": 600}', draw_step(step), "{}"
    )
    assert payload["passed"] is True
    assert payload["accuracy"] == 100.0
    with pytest.raises(ParamsError, match="zero_credit_tau"):
        score_step_json(
            step.model_dump_json(by_alias=True),
            '{"width": 800, "height": 600}',
            draw_step(step),
            '{"zero_credit_tau": 0.5}',
        )


def test_packed_and_dict_strokes_score_alike() -> None:
    step = example_step("polyline")
    strokes = draw_step(step, Drawing(pieces=3, pen=True, jitter_px=0.5, seed=4))
    args = (step.model_dump_json(by_alias=True), '{"width": 800, "height": 600}')
    packed = score_step_json(*args, pack_strokes(strokes), "{}")
    assert packed == score_step_json(*args, strokes, "{}")


def test_score_remote_takes_the_sessions_stroke_dicts(ray_address: str) -> None:
    """What the session actor calls: stroke dicts (deleted ones skipped) or packed strokes."""
    canvas = Canvas(width=800, height=600)
    step = example_step("circle")
    strokes = draw_step(step, Drawing(pieces=2, pen=True, jitter_px=0.5, seed=2))
    deleted = {**draw_step(example_step("line"))[0], "deleted": True}
    args = (step.model_dump_json(by_alias=True), canvas.model_dump_json())
    refs = [
        score_remote(*args, [*strokes, deleted], "{}"),
        score_remote(*args, pack_strokes(strokes), "{}"),
    ]
    expected = score_step(step, canvas, strokes, ScoringParams()).to_payload()
    assert ray.get(refs) == [expected, expected]
    assert expected["passed"] is True
