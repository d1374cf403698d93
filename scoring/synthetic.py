"""Synthetic drawings with known faults, for tests, the tuning notebook and the benchmark.

A stroke follows a path with a minimum-jerk speed profile (how a confident hand moves),
sampled at a given rate, as the session holds it: points are [x, y, pressure, t_ms].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inkstep.lessons import CircleShape, EllipseShape, Step
from scoring.geometry import Array, Shape, ellipse_outline, resample_path, segments

MOUSE_PRESSURE = 0.5


@dataclass(frozen=True)
class Drawing:
    """How to draw a step: each field is one known fault (the defaults draw it perfectly)."""

    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    partial: float = 1.0  # share of each shape drawn
    wobble_px: float = 0.0  # amplitude of a slow sideways wave
    wobble_wavelength_px: float = 40.0
    jitter_px: float = 0.0  # sd of per-sample hand tremor
    rate_hz: float = 120.0
    speed_px_s: float = 450.0
    pauses: int = 0  # hesitations per stroke
    pause_ms: float = 300.0
    pieces: int = 1  # strokes per shape (each piece a separate stroke)
    retrace: bool = False  # draw everything twice
    pen: bool = False  # varying pressure (a pen) instead of a mouse's constant one
    wrong_shape: bool = False  # a different kind of shape where the reference is
    seed: int = 0


def _transform(path: Array, centre: Array, d: Drawing) -> Array:
    return np.asarray((path - centre) * d.scale + centre + np.asarray(d.shift), dtype=np.float64)


def _shape_paths(shape: Shape, wrong: bool) -> tuple[list[Array], Array]:
    """Dense paths tracing the shape (or a wrong shape in its place) and its centre."""
    if isinstance(shape, CircleShape | EllipseShape):
        centre = np.array([shape.cx, shape.cy])
        if not wrong:
            return [ellipse_outline(shape, 1440)], centre
        # A square (or a rhombus-like parallelogram for an ellipse) through the same extent.
        rx, ry = (shape.r, shape.r) if isinstance(shape, CircleShape) else (shape.rx, shape.ry)
        angle = 0.0 if isinstance(shape, CircleShape) else math.radians(shape.angle_deg)
        corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1], [1, 1]]) * [rx, ry] * 0.95
        c, s = math.cos(angle), math.sin(angle)
        rotated = corners @ np.array([[c, s], [-s, c]])
        return [resample_path(rotated + centre, 0.25)], centre
    segs = segments(shape)
    pts = np.vstack([s.start for s in segs] + [segs[-1].end])
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    paths = []
    for seg in segs:
        line = np.vstack((seg.start, seg.end))
        if wrong:
            # A bow: an arc through both ends bulging by a third of the length.
            t = np.linspace(0.0, 1.0, 400)[:, None]
            direction = seg.end - seg.start
            normal = np.array([-direction[1], direction[0]]) / np.hypot(*direction)
            bulge = 0.12 * float(np.hypot(*direction))
            line = seg.start + t * direction + normal * (4 * bulge * t * (1 - t))
        paths.append(resample_path(line, 0.25))
    return paths, centre


def _wobble(path: Array, d: Drawing) -> Array:
    if d.wobble_px <= 0 or len(path) < 3:
        return path
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.hypot(*tangent.T), 1e-9)[:, None]
    normal = np.column_stack((-tangent[:, 1], tangent[:, 0]))
    s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))))
    wave = d.wobble_px * np.sin(2 * math.pi * s / d.wobble_wavelength_px)
    return path + normal * wave[:, None]


def _timed_samples(path: Array, d: Drawing, t0_ms: float, rng: np.random.Generator) -> Array:
    """Sample the path at rate_hz with a minimum-jerk speed profile (plus optional pauses)."""
    s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))))
    length = float(s[-1])
    duration_ms = max(150.0, 1000.0 * length / d.speed_px_s)
    dt = 1000.0 / d.rate_hz
    # Pauses stop the motion clock: real time t maps to motion time m(t).
    motion_stops = [duration_ms * (k + 1) / (d.pauses + 1) for k in range(d.pauses)]
    real_stops = [m + i * d.pause_ms for i, m in enumerate(motion_stops)]
    t = np.arange(0.0, duration_ms + d.pauses * d.pause_ms + dt / 2, dt)
    m = t - sum((np.clip(t - r, 0.0, d.pause_ms) for r in real_stops), np.zeros_like(t))
    u = np.clip(m / duration_ms, 0.0, 1.0)
    at = length * (10 * u**3 - 15 * u**4 + 6 * u**5)
    xy = np.column_stack((np.interp(at, s, path[:, 0]), np.interp(at, s, path[:, 1])))
    if d.jitter_px > 0:
        xy = xy + rng.normal(0.0, d.jitter_px, xy.shape)
    if d.pen:
        # A pen presses harder mid-stroke and tapers at both ends.
        pressure = np.clip(0.35 + 0.3 * np.sin(np.linspace(0, math.pi, len(t))), 0, 1)
    else:
        pressure = np.full(len(t), MOUSE_PRESSURE)
    return np.column_stack((xy, pressure, t + t0_ms))


def stroke(
    points: Array, stroke_id: str, step_id: str = "s1", author: str = "learner"
) -> dict[str, Any]:
    """A stroke dict as the session holds it."""
    return {
        "stroke_id": stroke_id,
        "author": author,
        "step_id": step_id,
        "layer": "main",
        "style": {"color": "#222222", "width": 3.0, "tool": "pen"},
        "points": [[float(v) for v in p] for p in points],
        "final": True,
        "deleted": False,
    }


PERFECT = Drawing()


def draw_shapes(
    shapes: Sequence[Shape], drawing: Drawing = PERFECT, step_id: str = "s1"
) -> list[dict[str, Any]]:
    """Strokes drawing the shapes with the drawing's faults."""
    rng = np.random.default_rng(drawing.seed)
    out: list[dict[str, Any]] = []
    t0 = 0.0
    for shape in shapes:
        paths, centre = _shape_paths(shape, drawing.wrong_shape)
        for path in paths:
            path = _transform(path, centre, drawing)
            s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))))
            path = path[s <= s[-1] * drawing.partial + 1e-9]
            path = _wobble(path, drawing)
            for _ in range(2 if drawing.retrace else 1):
                for piece in np.array_split(path, drawing.pieces):
                    if len(piece) < 2:
                        continue
                    pts = _timed_samples(piece, drawing, t0, rng)
                    t0 = float(pts[-1, 3]) + 400.0
                    out.append(stroke(pts, f"k{len(out)}", step_id))
    return out


def draw_step(step: Step, drawing: Drawing = PERFECT) -> list[dict[str, Any]]:
    """Strokes drawing a lesson step's reference with the drawing's faults."""
    return draw_shapes(step.reference, drawing, step.id)


def with_changes(drawing: Drawing, **changes: Any) -> Drawing:
    """A copy of a drawing with some faults changed."""
    return replace(drawing, **changes)


def example_step(kind: str, tolerance_px: float = 8.0) -> Step:
    """A one-shape step of the given kind on an 800x600 canvas, for tests and tuning."""
    shapes: dict[str, Any] = {
        "line": {"kind": "line", "x1": 150, "y1": 320, "x2": 650, "y2": 260},
        "circle": {"kind": "circle", "cx": 400, "cy": 300, "r": 150},
        "ellipse": {"kind": "ellipse", "cx": 400, "cy": 300, "rx": 220, "ry": 110, "angle_deg": 20},
        "polyline": {
            "kind": "polyline",
            "closed": True,
            "points": [[250, 200], [550, 180], [580, 420], [230, 400]],
        },
    }
    return Step.model_validate(
        {
            "id": f"{kind}-step",
            "title": f"A {kind}",
            "instruction": f"Trace the {kind}.",
            "reference": [shapes[kind]],
            "tolerance_px": tolerance_px,
            "pass": {"accuracy": 70, "quality": 0},
        }
    )
