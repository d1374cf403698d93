"""Helpers for the scoring-tuning notebook: a labelled set, feature rows, and sweeps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from inkstep.lessons import Canvas, Step
from scoring.params import ScoringParams
from scoring.score import score_step
from scoring.synthetic import Drawing, draw_step, example_step

KINDS = ("line", "circle", "ellipse", "polyline")


@dataclass(frozen=True)
class Case:
    """One drawing of a step and what a teacher would say about it."""

    name: str
    step: Step
    canvas: Canvas
    strokes: list[dict[str, Any]]
    should_pass: bool | None  # None: unlabelled (a recorded replay)
    clean: bool | None  # drawn without quality faults (None: unknown)


def _faults(tau: float) -> list[tuple[str, Drawing, bool, bool]]:
    """(name, drawing, should pass, clean) for one step with tolerance τ."""
    return [
        ("perfect", Drawing(), True, True),
        ("pen", Drawing(pen=True, rate_hz=240.0), True, True),
        ("two_strokes", Drawing(pieces=2), True, True),
        ("shift_half_tau", Drawing(shift=(0.0, 0.5 * tau)), True, True),
        # Near misses a teacher still accepts: just past τ, or a lumpy but well-placed shape.
        ("shift_1.2_tau", Drawing(shift=(0.0, 1.2 * tau)), True, True),
        ("lumpy", Drawing(wobble_px=0.9 * tau, wobble_wavelength_px=150.0), True, True),
        ("slight_jitter", Drawing(jitter_px=0.4, seed=3), True, True),
        ("wobbly", Drawing(wobble_px=3.0), True, False),
        ("shaky", Drawing(jitter_px=1.5, seed=5), True, False),
        ("hesitant", Drawing(pauses=2), True, False),
        ("retraced", Drawing(retrace=True), True, False),
        ("many_strokes", Drawing(pieces=6), True, False),
        ("shift_1.7_tau", Drawing(shift=(0.0, 1.7 * tau)), False, True),
        ("shift_2_tau", Drawing(shift=(0.0, 2.0 * tau)), False, True),
        ("shift_3_tau", Drawing(shift=(0.0, 3.0 * tau)), False, True),
        ("smaller", Drawing(scale=0.75), False, True),
        ("larger", Drawing(scale=1.35), False, True),
        ("wrong_shape", Drawing(wrong_shape=True), False, True),
        ("partial", Drawing(partial=0.6), False, True),
    ]


def synthetic_cases(
    steps: Iterable[tuple[Step, Canvas]] | None = None,
) -> list[Case]:
    """Every known fault drawn on each step (default: one example step per shape kind)."""
    if steps is None:
        canvas = Canvas(width=800, height=600)
        steps = [(example_step(kind), canvas) for kind in KINDS]
    cases = []
    for step, canvas in steps:
        for name, drawing, should_pass, clean in _faults(step.tolerance_px):
            strokes = draw_step(step, drawing)
            cases.append(Case(name, step, canvas, strokes, should_pass, clean))
    return cases


def replay_strokes(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Strokes per step from recorded events: stroke_append batches grouped by stroke_id.

    Undone strokes are dropped (an `undo` names the stroke; a later `redo` restores it).
    """
    strokes: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    for event in sorted(events, key=lambda e: e.get("seq", 0)):
        kind, payload = event.get("type"), event.get("payload") or {}
        if kind in ("undo", "redo"):
            target = payload.get("target")
            if isinstance(target, str):
                (deleted.add if kind == "undo" else deleted.discard)(target)
            continue
        if kind != "stroke_append" or "stroke_id" not in payload:
            continue
        stroke = strokes.setdefault(
            payload["stroke_id"],
            {
                "stroke_id": payload["stroke_id"],
                "author": event.get("author") or event.get("user_id") or "unknown",
                "step_id": event.get("step_id") or payload.get("step_id") or "?",
                "layer": payload.get("layer", "main"),
                "style": payload.get("style") or {"color": "#000000", "width": 2, "tool": "pen"},
                "points": [],
                "final": False,
                "deleted": False,
            },
        )
        stroke["points"].extend(payload.get("points") or [])
        stroke["final"] = stroke["final"] or bool(payload.get("final"))
    by_step: dict[str, list[dict[str, Any]]] = {}
    for stroke_id, stroke in strokes.items():
        stroke["deleted"] = stroke_id in deleted
        by_step.setdefault(stroke["step_id"], []).append(stroke)
    return by_step


def feature_rows(cases: Sequence[Case], params: ScoringParams) -> list[dict[str, Any]]:
    """One flat row per case: labels, scores and every feature (for tables and plots)."""
    rows = []
    for case in cases:
        result = score_step(case.step, case.canvas, case.strokes, params)
        d = result.details
        rows.append(
            {
                "case": case.name,
                "step": case.step.id,
                "should_pass": case.should_pass,
                "clean": case.clean,
                "accuracy": result.accuracy,
                "quality": result.quality,
                "passed": result.passed,
                "failed": ",".join(d["failed"]),
                "precision": d["precision"],
                "recall": d["recall"],
                "coverage": d["coverage"],
                "shape_factor": d["shape_factor"],
                "hausdorff_px": d["hausdorff_px"],
                "ssim": d["ssim"],
                **{f"q_{k}": v for k, v in d["quality_features"].items()},
                **{f"lost_{k}": v for k, v in d["quality_lost"].items()},
            }
        )
    return rows


def pass_agreement(rows: Sequence[Mapping[str, Any]]) -> float:
    """Balanced accuracy of `passed` against the labels (mean of pass and fail recall)."""
    labelled = [r for r in rows if r["should_pass"] is not None]
    good = [bool(r["passed"]) for r in labelled if r["should_pass"]]
    bad = [not r["passed"] for r in labelled if not r["should_pass"]]
    if not good or not bad:
        return 0.0
    return (sum(good) / len(good) + sum(bad) / len(bad)) / 2


def quality_separation(rows: Sequence[Mapping[str, Any]], margin: float = 3.0) -> float:
    """Share of (clean, faulty) pairs, among passing drawings, where clean scores higher."""
    scored = [r for r in rows if r["should_pass"] and r["clean"] is not None]
    clean = [r["quality"] for r in scored if r["clean"]]
    faulty = [r["quality"] for r in scored if not r["clean"]]
    pairs = [(c, f) for c in clean for f in faulty]
    return sum(c >= f + margin for c, f in pairs) / len(pairs) if pairs else 0.0


def sweep(
    cases: Sequence[Case], base: ScoringParams, grid: Mapping[str, Sequence[Any]]
) -> list[tuple[ScoringParams, float, float]]:
    """(params, pass agreement, quality separation) for every combination in the grid."""
    names = list(grid)
    out = []
    for values in product(*(grid[n] for n in names)):
        params = base.model_copy(update=dict(zip(names, values, strict=True)))
        params = ScoringParams.model_validate(params.model_dump())  # re-validate the combination
        rows = feature_rows(cases, params)
        out.append((params, pass_agreement(rows), quality_separation(rows)))
    return out


def best(results: Sequence[tuple[ScoringParams, float, float]]) -> ScoringParams:
    """The params with the best pass agreement, then quality separation, then nearest default."""
    default = ScoringParams().model_dump()

    def distance(p: ScoringParams) -> int:
        return sum(v != default[k] for k, v in p.model_dump().items())

    return max(results, key=lambda r: (round(r[1], 4), round(r[2], 4), -distance(r[0])))[0]
