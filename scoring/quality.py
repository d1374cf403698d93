"""Quality: how confident and clean the lines are, independent of where they are."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import correlate1d
from scipy.spatial import cKDTree

from scoring.geometry import Array, Ink, Part
from scoring.params import QUALITY_FEATURES, ScoringParams
from scoring.shape_gate import trimmed_rms


@dataclass(frozen=True)
class QualityResult:
    """The quality score, each feature's raw value, sub-score (0-1) and points lost."""

    score: float
    values: dict[str, float | None]  # None: the feature does not apply (e.g. mouse pressure)
    subscores: dict[str, float | None]
    lost_points: dict[str, float]


def mean_std(values: Array) -> tuple[float, float]:
    """values.mean() and values.std() of a non-empty 1-d array, bit for bit.

    The same operations numpy does (a pairwise sum, divide, squared deviations), without its
    ~10 µs of dispatch per call, which adds up over every stroke of every step.
    """
    n = len(values)
    mean = float(values.sum()) / n
    deviation = values - mean
    return mean, math.sqrt(float((deviation * deviation).sum()) / n)


def _odd_at_most(window: int, n: int) -> int:
    w = min(window, n)
    return w if w % 2 else w - 1


@lru_cache(maxsize=32)
def _projection(window: int, order: int) -> Array:
    """Least-squares polynomial projection over one window: row i smooths position i."""
    x = np.arange(window, dtype=np.float64) - window // 2
    v = np.vander(x, order + 1)
    return np.asarray(v @ np.linalg.pinv(v))


def savgol_path(path: Array, window: int, order: int) -> Array:
    """Savitzky-Golay smoothing of a (n, 2) path, the ends fitted rather than padded.

    The same result as scipy.signal.savgol_filter(mode="interp"), which costs ~1 ms a call
    in its edge fitting; with 20 strokes and two windows that alone would eat the budget.
    """
    n, h = len(path), window // 2
    proj = _projection(window, order)
    out = np.empty_like(path)
    # Interior: one correlation in C (the window's centre row is the smoothing kernel).
    out[h : n - h] = correlate1d(path, proj[h], axis=0, mode="nearest")[h : n - h]
    out[:h] = proj[:h] @ path[:window]
    out[n - h :] = proj[window - h :] @ path[n - window :]
    return out


def wobble_jitter_px(path: Array, params: ScoringParams) -> tuple[float, float] | None:
    """Jitter: deviation from a lightly smoothed copy; wobble: that copy vs a heavily smoothed one.

    Savitzky-Golay fits (cubic for wobble) keep circles, ellipses and straight lines as they
    are, so curvature itself is not mistaken for wobble; the ends are fitted, not padded.
    """
    n = len(path)
    jitter_w = _odd_at_most(params.jitter_window_px, n)
    if jitter_w < 5:
        return None
    light = savgol_path(path, jitter_w, 2)
    off = path - light
    off *= off
    jitter = math.sqrt(float((off[:, 0] + off[:, 1]).sum()) / n)
    wobble_w = _odd_at_most(min(params.wobble_window_px, int(n * params.wobble_window_share)), n)
    if wobble_w <= jitter_w:
        return 0.0, jitter
    heavy = savgol_path(path, wobble_w, 3)
    # Trimmed: a deliberate corner inside one stroke bends the smooth copy over a short stretch.
    gap = light - heavy
    wobble = trimmed_rms(np.hypot(gap[:, 0], gap[:, 1]), params.wobble_trim_fraction)
    return wobble, jitter


def speed_profile(raw: Array, params: ScoringParams) -> Array | None:
    """Pen speed (px/s) in fixed time windows, so 60 Hz and 240 Hz input compare; None untimed."""
    t = np.maximum.accumulate(raw[:, 3])
    duration = float(t[-1] - t[0])
    if duration < 3 * params.speed_window_ms:
        return None
    step = raw[1:, :2] - raw[:-1, :2]
    s = np.empty(len(raw))
    s[0] = 0.0
    np.cumsum(np.hypot(step[:, 0], step[:, 1]), out=s[1:])
    # np.interp needs increasing times: keep the last sample of any repeated timestamp.
    last = np.empty(len(t), dtype=bool)
    np.not_equal(t[1:], t[:-1], out=last[:-1])
    last[-1] = True
    at = np.arange(t[0], t[-1] + 1e-9, params.speed_window_ms)
    s_at = np.interp(at, t[last], s[last])
    return (s_at[1:] - s_at[:-1]) / (params.speed_window_ms / 1000.0)


def speed_variation(speed: Array) -> float | None:
    """Coefficient of variation of speed, leaving out the natural speed-up and slow-down."""
    n = len(speed)
    middle = speed[n // 10 : n - n // 10] if n >= 10 else speed
    mean, std = mean_std(middle)
    return std / mean if mean > 0 else None


def hesitations(speed: Array, params: ScoringParams) -> int:
    """Pauses inside a stroke: runs of slow windows lasting at least hesitation_min_ms."""
    slow = speed < params.hesitation_speed_px_s
    need = max(1, math.ceil(params.hesitation_min_ms / params.speed_window_ms))
    count, run = 0, 0
    for i, is_slow in enumerate(slow):
        if is_slow:
            run += 1
            continue
        # Runs touching the stroke's start are the pen settling, not a hesitation.
        if run >= need and i - run > 0:
            count += 1
        run = 0
    return count


def overdraw_fraction(
    inks: Sequence[Ink], params: ScoringParams, tree: cKDTree | None = None
) -> float:
    """Share of ink lying on top of another pass (a retrace or a second stroke over the first).

    `tree`: a k-d tree of all the ink's samples (the paths stacked), if one is already built.
    """
    paths = [ink.path for ink in inks if len(ink.path)]
    if not paths:
        return 0.0
    sizes = np.array([len(p) for p in paths])
    stroke = np.repeat(np.arange(len(paths)), sizes)
    index = np.arange(len(stroke)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    if tree is None:
        tree = cKDTree(np.vstack(paths))
    pairs = tree.query_pairs(params.overdraw_radius_px, output_type="ndarray")
    if len(pairs) == 0:
        return 0.0
    a, b = pairs[:, 0], pairs[:, 1]
    # Neighbours along the same pass are not overdraw: within half a turn of the radius.
    own = math.ceil(math.pi * params.overdraw_radius_px / params.sample_step_px)
    other = (stroke[a] != stroke[b]) | (np.abs(index[a] - index[b]) > own)
    marked = np.zeros(len(stroke), dtype=bool)
    marked[a[other]] = True
    marked[b[other]] = True
    return float(marked.mean())


def pressure_variation(inks: Sequence[Ink], params: ScoringParams) -> float | None:
    """Length-weighted CV of pressure within strokes; None for mouse-like constant pressure."""
    pressure = np.concatenate([ink.raw[:, 2] for ink in inks])
    if mean_std(pressure)[1] < params.pressure_min_std:
        return None
    values, weights = [], []
    for ink in inks:
        p = ink.raw[:, 2]
        cut = len(p) // 10  # pens taper in and out at the ends on purpose
        mean, std = mean_std(p[cut : len(p) - cut] if len(p) >= 10 else p)
        if mean > 0:
            values.append(std / mean)
            weights.append(max(ink.length_px, 1.0))
    return float(np.average(values, weights=weights)) if values else None


def needed_strokes(parts: Sequence[Part]) -> int:
    """Strokes a clean drawing needs: one per circle, ellipse, line or polyline edge."""
    return max(1, len(parts))


def _weighted(pairs: list[tuple[float, float]]) -> float | None:
    if not pairs:
        return None
    values, weights = zip(*pairs, strict=True)
    return float(np.average(values, weights=weights))


def feature_values(
    inks: Sequence[Ink],
    parts: Sequence[Part],
    params: ScoringParams,
    ink_tree: cKDTree | None = None,
) -> dict[str, float | None]:
    """Every quality feature's raw value (see ScoringParams.quality_bands for units).

    `ink_tree`: a k-d tree of all the ink's samples, if the caller has one (see overdraw).
    """
    shape_pairs: list[tuple[float, float]] = []
    jitter_pairs: list[tuple[float, float]] = []
    cv_pairs: list[tuple[float, float]] = []
    pauses: list[int] = []
    for ink in inks:
        weight = max(ink.length_px, 1.0)
        wj = wobble_jitter_px(ink.path, params)
        if wj is not None:
            shape_pairs.append((wj[0], weight))
            jitter_pairs.append((wj[1], weight))
        speed = speed_profile(ink.raw, params)
        if speed is not None:
            pauses.append(hesitations(speed, params))
            cv = speed_variation(speed)
            if cv is not None:
                cv_pairs.append((cv, weight))
    extra = len(inks) - needed_strokes(parts) - params.extra_strokes_allowed
    return {
        "wobble": _weighted(shape_pairs),
        "jitter": _weighted(jitter_pairs),
        "speed_variation": _weighted(cv_pairs),
        "hesitation": float(np.mean(pauses)) if pauses else None,
        "corrections": float(max(0, extra)),
        "overdraw": overdraw_fraction(inks, params, ink_tree),
        "pressure": pressure_variation(inks, params),
    }


def quality_of(
    inks: Sequence[Ink],
    parts: Sequence[Part],
    params: ScoringParams,
    ink_tree: cKDTree | None = None,
) -> QualityResult:
    """Quality 0-100: the weighted mean of the applicable features' sub-scores."""
    if not inks:
        none: dict[str, float | None] = dict.fromkeys(QUALITY_FEATURES)
        return QualityResult(0.0, none, dict(none), dict.fromkeys(QUALITY_FEATURES, 0.0))
    values = feature_values(inks, parts, params, ink_tree)
    subscores: dict[str, float | None] = {}
    for name in QUALITY_FEATURES:
        value, band = values[name], params.quality_bands[name]
        subscores[name] = (
            None
            if value is None
            else float(np.clip(1.0 - (value - band.good) / (band.bad - band.good), 0.0, 1.0))
        )
    active = [n for n in QUALITY_FEATURES if subscores[n] is not None]
    total = sum(params.quality_weights[n] for n in active)
    lost = dict.fromkeys(QUALITY_FEATURES, 0.0)
    if total <= 0:
        return QualityResult(100.0, values, subscores, lost)
    for name in active:
        lost[name] = 100.0 * params.quality_weights[name] * (1.0 - (subscores[name] or 0.0)) / total
    return QualityResult(100.0 - sum(lost.values()), values, subscores, lost)
