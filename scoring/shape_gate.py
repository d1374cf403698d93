"""The shape gate: the ink must fit the reference's kind, so a square does not pass for a circle.

For each reference part (a circle, an ellipse, or one straight segment) the model of that
kind is fitted (skimage.measure CircleModel / EllipseModel / LineModelND) to the ink nearest
that part, and the trimmed RMS residual is compared with the step tolerance. The fitted model
also gives the feedback details: centre offset, radius/length ratio, angle error, overshoot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from skimage.measure import CircleModel, EllipseModel, LineModelND

from inkstep.lessons import CircleShape, EllipseShape
from scoring.geometry import Array, Part
from scoring.params import ScoringParams

# An ellipse whose axes differ by less than this has no meaningful orientation.
_ROUND_AXIS_RATIO = 1.1


@dataclass(frozen=True)
class PartFit:
    """The gate's verdict and the feedback details for one reference part."""

    residual_px: float | None  # None: too little ink to judge
    ok: bool
    factor: float  # multiplies accuracy; 1 when ok
    size_ok: bool = True  # radius or ends within size_tolerance_tau·τ of the reference
    details: dict[str, Any] = field(default_factory=dict)


def trimmed_rms(values: Array, trim_fraction: float) -> float:
    """RMS of the values after dropping the largest `trim_fraction` of them."""
    v = np.sort(np.abs(values))
    keep = max(1, math.ceil(len(v) * (1.0 - trim_fraction)))
    kept = v[:keep]
    return math.sqrt(float((kept * kept).sum()) / keep)  # np.mean's sum, without its overhead


def _angle_error_deg(a_rad: float, b_rad: float) -> float:
    """Difference between two undirected orientations, in [0, 90] degrees."""
    d = math.degrees(a_rad - b_rad) % 180.0
    return min(d, 180.0 - d)


def _fit_circle(ink: Array, ref: CircleShape) -> tuple[Array | None, dict[str, Any]]:
    shift = ink.mean(axis=0)
    model = CircleModel.from_estimate(ink - shift)  # type: ignore[no-untyped-call]
    if not model:
        return None, {}
    cx, cy = np.asarray(model.center) + shift
    details = {
        "centre_offset_px": math.hypot(cx - ref.cx, cy - ref.cy),
        "radius_ratio": float(model.radius) / ref.r,
        "size_error_px": abs(float(model.radius) - ref.r),
    }
    return np.asarray(model.residuals(ink - shift)), details


def _fit_ellipse(ink: Array, ref: EllipseShape) -> tuple[Array | None, dict[str, Any]]:
    shift = ink.mean(axis=0)
    model = EllipseModel.from_estimate(ink - shift)  # type: ignore[no-untyped-call]
    if not model:
        return None, {}
    (cx, cy), (a, b), theta = np.asarray(model.center) + shift, model.axis_lengths, model.theta
    if not all(math.isfinite(v) and v > 0 for v in (a, b)):
        return None, {}
    details: dict[str, Any] = {
        "centre_offset_px": math.hypot(cx - ref.cx, cy - ref.cy),
        "radius_ratio": math.sqrt(a * b / (ref.rx * ref.ry)),
        "axis_ratio": max(a, b) / min(a, b),
        "angle_error_deg": None,
        "size_error_px": abs(math.sqrt(a * b) - math.sqrt(ref.rx * ref.ry)),
    }
    major = theta if a >= b else theta + math.pi / 2
    ref_major = math.radians(ref.angle_deg) + (0.0 if ref.rx >= ref.ry else math.pi / 2)
    if max(ref.rx, ref.ry) / min(ref.rx, ref.ry) >= _ROUND_AXIS_RATIO:
        details["angle_error_deg"] = _angle_error_deg(major, ref_major)
    # EllipseModel.residuals solves one optimisation per point (far too slow for ~1000 points),
    # so measure the distance to a dense outline of the fitted ellipse instead (< 0.1 px off).
    t = np.linspace(0.0, 2 * math.pi, max(360, math.ceil(2 * math.pi * max(a, b))))
    c, s = math.cos(theta), math.sin(theta)
    outline = np.column_stack(
        (cx + a * c * np.cos(t) - b * s * np.sin(t), cy + a * s * np.cos(t) + b * c * np.sin(t))
    )
    residuals, _ = cKDTree(outline).query(ink)
    return np.asarray(residuals), details


def _fit_segment(
    ink: Array, part: Part, reach_px: float, gaps: tuple[float, float]
) -> tuple[Array | None, dict[str, Any]]:
    seg = part.segment
    assert seg is not None
    x, y = ink[:, 0], ink[:, 1]
    if max(x.max() - x.min(), y.max() - y.min()) < 1.0:  # a dot: no direction to fit
        return None, {}
    model = LineModelND.from_estimate(ink)  # type: ignore[no-untyped-call]
    if not model:
        return None, {}
    direction = seg.end - seg.start
    length = float(np.hypot(*direction))
    unit = direction / length
    along = (ink - seg.start) @ unit
    across = (ink - seg.start) @ np.array([-unit[1], unit[0]])
    # The ends are judged on ink running along the segment, not on a stray mark beside it.
    near = np.abs(across) <= reach_px
    lo, hi = (float(along[near].min()), float(along[near].max())) if near.any() else (0.0, 0.0)
    # Running past an end only counts where no other part continues from it.
    overshoot = [max(0.0, -lo) * part.free_ends[0], max(0.0, hi - length) * part.free_ends[1]]
    fitted = np.asarray(model.direction, dtype=np.float64)
    details = {
        "centre_offset_px": math.hypot((lo + hi) / 2 - length / 2, float(np.median(across))),
        "length_ratio": (hi - lo) / length,
        "angle_error_deg": _angle_error_deg(
            math.atan2(fitted[1], fitted[0]), math.atan2(unit[1], unit[0])
        ),
        "overshoot_px": sum(overshoot),
        "gap_px": max(gaps),
        "size_error_px": max(*gaps, *overshoot),  # the worse end: short of it or past it
    }
    return np.asarray(model.residuals(ink)), details


def fit_part(
    part: Part,
    ink: Array,
    tau_px: float,
    params: ScoringParams,
    end_gaps_px: tuple[float, float] = (0.0, 0.0),
) -> PartFit:
    """Fit the part's kind to its ink; judge the trimmed residual and the size against τ.

    `end_gaps_px`: for a segment, the distance from each end to the nearest ink of any part
    (at a shared corner the ink there may well be labelled with the neighbouring part).
    """
    if len(ink) < params.gate_min_points:
        return PartFit(None, True, 1.0, details={"ink_samples": len(ink)})
    if part.segment is not None:
        reach = params.zero_credit_tau * tau_px
        residuals, details = _fit_segment(ink, part, reach, end_gaps_px)
    elif isinstance(part.shape, CircleShape):
        residuals, details = _fit_circle(ink, part.shape)
    elif isinstance(part.shape, EllipseShape):
        residuals, details = _fit_ellipse(ink, part.shape)
    else:  # a degenerate polyline (one point): nothing to fit
        return PartFit(None, True, 1.0, details={"ink_samples": len(ink)})
    details["ink_samples"] = len(ink)
    if residuals is None:
        # The kind's model cannot even be fitted (e.g. a straight stroke for an ellipse).
        return PartFit(math.inf, False, 0.0, False, details)
    residual = trimmed_rms(residuals, params.gate_trim_fraction)
    excess = residual / (params.gate_residual_tau * tau_px)
    factor = 1.0 if excess <= 1.0 else max(0.0, 1.0 - params.gate_penalty * (excess - 1.0))
    size_ok = details["size_error_px"] <= params.size_tolerance_tau * tau_px
    return PartFit(residual, excess <= 1.0, factor, size_ok, details)
