"""The Ray task the session actor submits when a learner completes a step.

What crosses the Ray boundary is compact: the step, canvas and params as JSON text and the
strokes packed into two numpy arrays (`pack_strokes`). A worker scores the same few lesson
steps over and over, so it validates each distinct JSON text once and keeps the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import ray

from inkstep.lessons import Canvas, Step
from scoring.geometry import PackedStrokes, pack_strokes
from scoring.params import ParamsError, ScoringParams, parse_params
from scoring.score import score_step

__all__ = ["pack_strokes", "score_remote", "score_step_json", "score_step_task"]


@lru_cache(maxsize=256)
def _step(step_json: str) -> Step:
    return Step.model_validate_json(step_json)


@lru_cache(maxsize=16)
def _canvas(canvas_json: str) -> Canvas:
    return Canvas.model_validate_json(canvas_json)


@lru_cache(maxsize=16)
def _params(params_json: str) -> ScoringParams:
    try:
        data = json.loads(params_json)
    except ValueError as exc:
        raise ParamsError(f"scoring params: not JSON: {exc}") from None
    return parse_params(data, "scoring params")


def score_step_json(
    step_json: str,
    canvas_json: str,
    strokes: PackedStrokes | Iterable[Mapping[str, Any]],
    params_json: str,
) -> dict[str, Any]:
    """score_step on what crosses the Ray boundary, returning the `score_update` payload.

    `step_json`, `canvas_json`, `params_json`: JSON text (validated once per distinct text);
    `strokes`: packed (see `pack_strokes`) or the session's stroke dicts.
    """
    step, canvas, params = _step(step_json), _canvas(canvas_json), _params(params_json)
    return score_step(step, canvas, strokes, params).to_payload()


# One CPU each, so a cluster scores as many steps at once as it has cores.
score_step_task = ray.remote(num_cpus=1)(score_step_json)


def score_remote(
    step_json: str,
    canvas_json: str,
    strokes: PackedStrokes | Iterable[Mapping[str, Any]],
    params_json: str,
) -> ray.ObjectRef[dict[str, Any]]:
    """Start scoring one completion on Ray; the reference resolves to the payload.

    What the session actor calls (and `inkstep bench scoring` measures).
    """
    return score_step_task.remote(step_json, canvas_json, pack_strokes(strokes), params_json)
