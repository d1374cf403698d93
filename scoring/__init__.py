"""Step scoring: pure functions from a lesson step and a learner's strokes to a StepScore.

The Ray task wrapper lives in `scoring.tasks` (imported separately so the metrics load
without Ray).
"""

from __future__ import annotations

from scoring.geometry import PackedStrokes, pack_strokes
from scoring.params import ParamsError, ScoringParams, load_params, parse_params, save_params
from scoring.score import StepScore, score_step

__all__ = [
    "PackedStrokes",
    "ParamsError",
    "ScoringParams",
    "StepScore",
    "load_params",
    "pack_strokes",
    "parse_params",
    "save_params",
    "score_step",
]
