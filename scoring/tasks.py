"""The Ray task the session actor submits when a learner completes a step."""

from __future__ import annotations

from typing import Any

import ray

from inkstep.lessons import Canvas, Step
from scoring.params import parse_params
from scoring.score import score_step


def score_step_json(
    step_json: dict[str, Any],
    canvas_json: dict[str, Any],
    strokes: list[dict[str, Any]],
    params_json: dict[str, Any],
) -> dict[str, Any]:
    """score_step on plain JSON (what crosses the Ray boundary), returning the wire payload."""
    step = Step.model_validate(step_json)
    canvas = Canvas.model_validate(canvas_json)
    params = parse_params(params_json, "scoring params")
    return score_step(step, canvas, strokes, params).to_payload()


# One CPU each, so a cluster scores as many steps at once as it has cores.
score_step_task = ray.remote(num_cpus=1)(score_step_json)
