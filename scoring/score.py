"""score_step: one learner's strokes for one lesson step -> accuracy, quality, pass, details."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from inkstep.lessons import Canvas, Step
from scoring.accuracy import Matching, accuracy_terms, map_ssim, match, robust_hausdorff_px
from scoring.geometry import PackedStrokes, Reference, build_reference, ink_from_strokes
from scoring.params import ScoringParams
from scoring.quality import quality_of
from scoring.shape_gate import fit_part


@dataclass(frozen=True)
class StepScore:
    """The verdict on one step: accuracy and quality (0-100), pass, and feedback details."""

    accuracy: float
    quality: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The `score_update` payload: plain JSON, numbers rounded for the wire."""
        return {
            "accuracy": round(self.accuracy, 1),
            "quality": round(self.quality, 1),
            "passed": self.passed,
            "details": _rounded(self.details),
        }


def _rounded(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float | np.floating):
        v = float(value)
        return round(v, 3) if math.isfinite(v) else None  # JSON has no inf/nan
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_rounded(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def score_step(
    step: Step,
    canvas: Canvas,
    strokes: Iterable[Mapping[str, Any]] | PackedStrokes,
    params: ScoringParams | None = None,
) -> StepScore:
    """Score a learner's strokes for one step (deleted and eraser strokes are ignored).

    `strokes`: the session's stroke dicts, or the same already packed (see `pack_strokes`).
    """
    params = (params or ScoringParams()).for_step(step)
    tau = step.tolerance_px
    reference = build_reference(step.reference, params.sample_step_px)
    inks = ink_from_strokes(strokes, params.sample_step_px)
    ink = np.vstack([i.path for i in inks]) if inks else np.empty((0, 2))
    # One k-d tree of the ink serves both the matching and quality's overdraw.
    ink_tree = cKDTree(ink) if len(ink) else None
    matching = match(reference, ink, ink_tree)
    terms = accuracy_terms(reference, matching, tau, params)
    quality = quality_of(inks, reference.parts, params, ink_tree)

    fits = [
        fit_part(part, ink[matching.ink_part == k], tau, params, _end_gaps(reference, matching, k))
        for k, part in enumerate(reference.parts)
    ]
    lengths = np.array([max(p.length_px, 1.0) for p in reference.parts])
    gate_factor = float(np.average([f.factor for f in fits], weights=lengths))
    accuracy = 100.0 * terms.f * gate_factor

    failed: list[str] = []
    if len(ink) == 0:
        failed.append("no_ink")
    if accuracy < step.pass_rule.accuracy:
        failed.append("accuracy")
    if quality.score < step.pass_rule.quality:
        failed.append("quality")
    if not all(f.ok for f in fits):
        failed.append("shape")
    if not all(f.size_ok for f in fits):
        failed.append("size")
    if min(terms.coverage_by_shape) < params.min_coverage:
        failed.append("coverage")
    if len(ink) and terms.precision < params.min_precision:
        failed.append("precision")

    shapes: list[dict[str, Any]] = []
    for i, shape in enumerate(step.reference):
        mine = [(p, f) for p, f in zip(reference.parts, fits, strict=True) if p.shape_index == i]
        entry: dict[str, Any] = {
            "kind": shape.kind,
            "coverage": terms.coverage_by_shape[i],
            "shape_ok": all(f.ok for _, f in mine),
            "size_ok": all(f.size_ok for _, f in mine),
            "residual_px": _worst([f.residual_px for _, f in mine]),
        }
        if len(mine) == 1:
            entry.update(mine[0][1].details)
        else:  # a polyline: one entry per edge
            entry["edges"] = [{"residual_px": f.residual_px, **f.details} for _, f in mine]
        shapes.append(entry)

    details: dict[str, Any] = {
        "failed": failed,
        "tolerance_px": tau,
        "precision": terms.precision,
        "recall": terms.recall,
        "f1": terms.f,
        "shape_factor": gate_factor,
        "coverage": min(terms.coverage_by_shape),
        "hausdorff_px": robust_hausdorff_px(reference.samples, ink, params.hausdorff_cell_px),
        "ssim": map_ssim(reference.samples, ink, tau, canvas, params),
        "shapes": shapes,
        "strokes": len(inks),
        "ink_length_px": sum(i.length_px for i in inks),
        "quality_features": quality.values,
        "quality_subscores": quality.subscores,
        "quality_lost": quality.lost_points,
    }
    return StepScore(accuracy, quality.score, not failed, details)


def _end_gaps(reference: Reference, matching: Matching, part: int) -> tuple[float, float]:
    """Distance from the first and last sample of a part to the nearest ink."""
    index = np.flatnonzero(reference.part_of_sample == part)
    return float(matching.ref_to_ink_px[index[0]]), float(matching.ref_to_ink_px[index[-1]])


def _worst(residuals: list[float | None]) -> float | None:
    known = [r for r in residuals if r is not None]
    return max(known) if known else None
