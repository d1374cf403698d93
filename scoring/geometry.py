"""Strokes and reference shapes as point samples about one pixel apart."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from inkstep.lessons import CircleShape, EllipseShape, LineShape, PolylineShape

Shape = LineShape | PolylineShape | CircleShape | EllipseShape
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Ink:
    """One stroke: raw samples (x, y, pressure, t_ms) and the path resampled by arc length."""

    raw: Array  # (n, 4)
    path: Array  # (m, 2), consecutive points `step` px apart
    length_px: float


@dataclass(frozen=True)
class Segment:
    """A straight piece of a reference (a line, or one edge of a polyline)."""

    start: Array
    end: Array


def resample_path(xy: Array, step_px: float) -> Array:
    """Points every `step_px` along the polyline `xy` (endpoints kept, repeats dropped)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return xy
    seg = np.hypot(*np.diff(xy, axis=0).T)
    keep = np.concatenate(([True], seg > 1e-9))
    return _resample_kept(xy[keep], seg[seg > 1e-9], step_px)


def path_length(xy: Array) -> float:
    """Length of a polyline in px."""
    return float(np.hypot(*np.diff(xy, axis=0).T).sum()) if len(xy) > 1 else 0.0


def ellipse_outline(shape: EllipseShape | CircleShape, n: int = 720) -> Array:
    """A closed outline of a circle or an ellipse (first point repeated at the end)."""
    t = np.linspace(0.0, 2 * math.pi, n + 1)
    if isinstance(shape, CircleShape):
        rx = ry = shape.r
        angle = 0.0
    else:
        rx, ry, angle = shape.rx, shape.ry, math.radians(shape.angle_deg)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.column_stack((shape.cx + c * x - s * y, shape.cy + s * x + c * y))


def segments(shape: Shape) -> list[Segment]:
    """The straight pieces of a line or polyline (none for curves)."""
    if isinstance(shape, LineShape):
        return [Segment(np.array([shape.x1, shape.y1]), np.array([shape.x2, shape.y2]))]
    if isinstance(shape, PolylineShape):
        pts = [np.array(p, dtype=np.float64) for p in shape.points]
        if shape.closed:
            pts.append(pts[0])
        return [Segment(a, b) for a, b in pairwise(pts) if np.any(a != b)]
    return []


def shape_samples(shape: Shape, step_px: float) -> Array:
    """The reference shape as points `step_px` apart along its outline."""
    if isinstance(shape, CircleShape | EllipseShape):
        n = 720 if isinstance(shape, CircleShape) else 1440
        # Drop the repeated closing point so a closed outline is not sampled twice there.
        return resample_path(ellipse_outline(shape, n), step_px)[:-1]
    parts = [resample_path(np.vstack((s.start, s.end)), step_px) for s in segments(shape)]
    if not parts:  # a polyline whose points all coincide
        return (
            np.asarray([shape.points[0]], dtype=np.float64)
            if isinstance(shape, PolylineShape)
            else np.empty((0, 2))
        )
    return np.vstack(parts)


def shape_size(shape: Shape) -> float:
    """A characteristic size in px: radius, mean radius, or length."""
    if isinstance(shape, CircleShape):
        return float(shape.r)
    if isinstance(shape, EllipseShape):
        return math.sqrt(shape.rx * shape.ry)
    return sum(float(np.hypot(*(s.end - s.start))) for s in segments(shape))


def live_strokes(strokes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The strokes that count: not deleted (undone), not eraser, with at least one point."""
    return [
        s
        for s in strokes
        if not s.get("deleted", False)
        and (s.get("style") or {}).get("tool", "pen") != "eraser"
        and s.get("points")
    ]


def _raw_points(points: Sequence[Sequence[float]]) -> Array:
    """(n, 4) samples; rows with fewer values (older clients send [x, y]) are zero-filled."""
    try:
        raw = np.asarray(points, dtype=np.float64)
    except ValueError:  # ragged rows
        raw = np.empty((0, 0))
    if raw.ndim == 2 and raw.shape[1] >= 4:
        return raw[:, :4]
    out = np.zeros((len(points), 4))
    for i, point in enumerate(points):
        values = list(point)[:4]
        out[i, : len(values)] = values
    return out


@dataclass(frozen=True, eq=False)
class PackedStrokes:
    """The strokes that count as one (n, 4) array of [x, y, pressure, t_ms] rows + row counts.

    What a Ray task should receive: two arrays serialise faster than the session's stroke
    dicts, and the worker has no per-point conversion left to do.
    """

    points: Array  # (n, 4) float64, the strokes one after the other
    counts: NDArray[np.int64]  # rows per stroke, each >= 1

    def __len__(self) -> int:
        return len(self.counts)


def pack_strokes(strokes: Iterable[Mapping[str, Any]] | PackedStrokes) -> PackedStrokes:
    """The live strokes (see `live_strokes`) packed into two arrays."""
    if isinstance(strokes, PackedStrokes):
        return strokes
    points = [s["points"] for s in live_strokes(strokes)]
    counts = np.array([len(p) for p in points], dtype=np.int64)
    try:  # one conversion for all strokes when every row is a full sample
        raw = np.asarray([row for p in points for row in p], dtype=np.float64)
    except ValueError:
        raw = np.empty((0, 0))
    if raw.ndim != 2 or raw.shape[1] < 4:  # short or ragged rows: convert stroke by stroke
        raw = np.vstack([_raw_points(p) for p in points]) if points else np.empty((0, 4))
    return PackedStrokes(np.ascontiguousarray(raw[:, :4]), counts)


def ink_from_strokes(
    strokes: Iterable[Mapping[str, Any]] | PackedStrokes, step_px: float
) -> list[Ink]:
    """Turn session stroke dicts into resampled ink, skipping deleted and eraser strokes."""
    packed = pack_strokes(strokes)
    if not len(packed):
        return []
    # Per-sample work is done once over all strokes; only the per-stroke arc length
    # parametrisation is a loop (the same operations as resample_path, stroke by stroke).
    raw = packed.points
    ends = np.cumsum(packed.counts)
    starts = ends - packed.counts
    step = np.hypot(*np.diff(raw[:, :2], axis=0).T)
    moved = np.concatenate(([True], step > 1e-9))
    moved[starts] = True
    kept = np.cumsum(moved)  # kept samples up to and including each row
    paths = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        seg = step[start : end - 1]
        if kept[end - 1] - kept[start] == end - 1 - start:  # no repeated points
            xy = raw[start:end, :2]
        else:
            xy = raw[start:end][moved[start:end], :2]
            seg = seg[seg > 1e-9]
        paths.append(_resample_kept(xy, seg, step_px))
    sizes = [len(p) for p in paths]
    gaps = np.hypot(*np.diff(np.concatenate(paths), axis=0).T)
    first = np.cumsum([0, *sizes[:-1]]).tolist()
    return [
        Ink(raw[a:b], path, float(gaps[i : i + m - 1].sum()) if m > 1 else 0.0)
        for a, b, path, i, m in zip(
            starts.tolist(), ends.tolist(), paths, first, sizes, strict=True
        )
    ]


def _resample_kept(xy: Array, seg: Array, step_px: float) -> Array:
    """resample_path's second half: `xy` without repeats, `seg` the lengths between them."""
    if len(xy) == 1:
        return xy.copy()
    s = np.empty(len(seg) + 1)
    s[0] = 0.0
    np.cumsum(seg, out=s[1:])
    length = float(s[-1])
    n = max(2, math.ceil(length / step_px) + 1)
    # np.linspace(0, length, n), exactly, without its ~10 µs of argument handling.
    at = np.arange(n) * (length / (n - 1))
    at[-1] = length
    out = np.empty((n, 2))
    out[:, 0] = np.interp(at, s, xy[:, 0])
    out[:, 1] = np.interp(at, s, xy[:, 1])
    return out


@dataclass(frozen=True)
class Part:
    """One piece the ink is matched against: a whole circle/ellipse, or one straight segment."""

    shape_index: int
    shape: Shape
    segment: Segment | None
    length_px: float
    # Per segment end: True unless another part starts there (a polyline corner, lines
    # meeting at a vanishing point), where ink running on belongs to the neighbour.
    free_ends: tuple[bool, bool] = (True, True)


@dataclass(frozen=True)
class Reference:
    """A step's reference shapes sampled ~1 px apart, each sample labelled with its part."""

    shapes: tuple[Shape, ...]
    parts: tuple[Part, ...]
    samples: Array
    part_of_sample: NDArray[np.int64]
    tree: cKDTree

    @property
    def shape_of_sample(self) -> NDArray[np.int64]:
        """For each sample, the index of the lesson shape it belongs to."""
        index = np.array([p.shape_index for p in self.parts], dtype=np.int64)
        return index[self.part_of_sample]

    @property
    def length_px(self) -> float:
        """Total outline length of the reference."""
        return sum(p.length_px for p in self.parts)


def build_reference(shapes: Sequence[Shape], step_px: float) -> Reference:
    """Sample every shape of a step and split lines/polylines into their segments (cached)."""
    # Workers score the same lesson steps over and over, so sampling and the k-d tree are
    # kept; the key is the shapes' JSON because lesson shapes hold lists (not hashable).
    key = (tuple(shape.model_dump_json() for shape in shapes), step_px)
    reference = _REFERENCES.get(key)
    if reference is None:
        if len(_REFERENCES) >= _MAX_CACHED_REFERENCES:
            _REFERENCES.clear()
        reference = _REFERENCES[key] = _sample_reference(tuple(shapes), step_px)
    return reference


_MAX_CACHED_REFERENCES = 256
_REFERENCES: dict[tuple[tuple[str, ...], float], Reference] = {}


def _sample_reference(shapes: tuple[Shape, ...], step_px: float) -> Reference:
    parts: list[Part] = []
    samples: list[Array] = []
    for i, shape in enumerate(shapes):
        if isinstance(shape, CircleShape | EllipseShape):
            pts = shape_samples(shape, step_px)
            parts.append(Part(i, shape, None, path_length(pts) + step_px))
            samples.append(pts)
            continue
        segs = segments(shape)
        if not segs:  # degenerate polyline: a single point still has to be drawn
            parts.append(Part(i, shape, None, 0.0))
            samples.append(shape_samples(shape, step_px))
        for seg in segs:
            pts = resample_path(np.vstack((seg.start, seg.end)), step_px)
            parts.append(Part(i, shape, seg, float(np.hypot(*(seg.end - seg.start)))))
            samples.append(pts)
    labels = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(samples)])
    points = np.vstack(samples)
    tree = cKDTree(points)
    for k, part in enumerate(parts):
        if part.segment is not None:
            ends = (part.segment.start, part.segment.end)
            shared = [bool(np.any(labels[tree.query_ball_point(e, 0.5)] != k)) for e in ends]
            parts[k] = replace(part, free_ends=(not shared[0], not shared[1]))
    return Reference(shapes, tuple(parts), points, labels, tree)
