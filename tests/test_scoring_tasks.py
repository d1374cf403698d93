"""The Ray task the session actor submits: same answer as the plain function, in parallel."""

from __future__ import annotations

import ray

from inkstep.lessons import Canvas
from scoring import ScoringParams, score_step
from scoring.synthetic import Drawing, draw_step, example_step
from scoring.tasks import score_step_json, score_step_task


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
            step.model_dump(mode="json", by_alias=True),
            canvas.model_dump(),
            strokes,
            params.model_dump(mode="json"),
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
        step.model_dump(mode="json", by_alias=True),
        {"width": 800, "height": 600},
        draw_step(step),
        {},
    )
    assert payload["passed"] is True
    assert payload["accuracy"] == 100.0
