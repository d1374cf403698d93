"""Accuracy: how close the ink lies to the reference, and how much of it the ink covers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree
from skimage.metrics import hausdorff_distance, structural_similarity

from inkstep.lessons import Canvas
from scoring.geometry import Array, Reference
from scoring.params import ScoringParams


@dataclass(frozen=True)
class Matching:
    """Nearest-neighbour distances both ways between ink samples and reference samples."""

    ink_to_ref_px: Array  # per ink sample
    ink_part: NDArray[np.int64]  # nearest reference part of each ink sample
    ref_to_ink_px: Array  # per reference sample (inf when there is no ink)


def match(reference: Reference, ink: Array) -> Matching:
    """Pair every ink sample with its nearest reference sample and the other way round."""
    if len(ink) == 0:
        inf = np.full(len(reference.samples), np.inf)
        return Matching(np.empty(0), np.empty(0, dtype=np.int64), inf)
    d_ink, idx = reference.tree.query(ink)
    d_ref, _ = cKDTree(ink).query(reference.samples)
    return Matching(d_ink, reference.part_of_sample[idx], d_ref)


def credit(distance_px: Array, tau_px: float, params: ScoringParams) -> Array:
    """1 within full_credit_tau·τ, falling linearly to 0 at zero_credit_tau·τ."""
    full = params.full_credit_tau * tau_px
    zero = params.zero_credit_tau * tau_px
    return np.clip((zero - distance_px) / (zero - full), 0.0, 1.0)


def weighted_f(precision: float, recall: float, params: ScoringParams) -> float:
    """Weighted harmonic mean of precision and recall (plain F1 with equal weights)."""
    if precision <= 0 or recall <= 0:
        return 0.0
    wp, wr = params.precision_weight, params.recall_weight
    return (wp + wr) / (wp / precision + wr / recall)


@dataclass(frozen=True)
class AccuracyTerms:
    """Precision, recall and their F, overall and per lesson shape."""

    precision: float
    recall: float
    f: float
    coverage_by_shape: list[float]  # recall of each lesson shape


def accuracy_terms(
    reference: Reference, matching: Matching, tau_px: float, params: ScoringParams
) -> AccuracyTerms:
    """Precision (ink near the reference), recall (reference near ink), and their F."""
    ref_credit = credit(matching.ref_to_ink_px, tau_px, params)
    precision = (
        float(credit(matching.ink_to_ref_px, tau_px, params).mean())
        if len(matching.ink_to_ref_px)
        else 0.0
    )
    recall = float(ref_credit.mean())
    # Coverage is recall per shape, with the same falloff: a hard τ cut-off would turn a
    # drawing 1.2τ away from "fully covered" into "not covered at all".
    by_shape = reference.shape_of_sample
    coverage = [float(ref_credit[by_shape == i].mean()) for i in range(len(reference.shapes))]
    return AccuracyTerms(precision, recall, weighted_f(precision, recall, params), coverage)


@dataclass(frozen=True)
class Grid:
    """A coarse raster window over reference and ink: origin (px) and cell size (px)."""

    origin: Array
    cell_px: float
    shape: tuple[int, int]  # rows, cols

    def raster(self, points: Array) -> NDArray[np.bool_]:
        """Cells that contain at least one point."""
        out = np.zeros(self.shape, dtype=bool)
        if len(points):
            ij = np.floor((points - self.origin) / self.cell_px).astype(np.int64)
            inside = (ij[:, 0] >= 0) & (ij[:, 0] < self.shape[1])
            inside &= (ij[:, 1] >= 0) & (ij[:, 1] < self.shape[0])
            out[ij[inside, 1], ij[inside, 0]] = True
        return out


def map_grid(
    reference: Array, ink: Array, tau_px: float, canvas: Canvas, params: ScoringParams
) -> Grid:
    """The window around reference and ink, bounded by the canvas, in cells of a few px.

    SSIM on the full 800x600 canvas at 1 px costs tens of ms (see DESIGN.md's budget), and
    exp(-d/τ) maps are smooth at the scale of τ, so a grid of a few px loses nothing useful.
    """
    margin = params.map_margin_tau * tau_px
    pts = np.vstack((reference, ink)) if len(ink) else reference
    lo = np.maximum(pts.min(axis=0) - margin, (-margin, -margin))
    hi = np.minimum(pts.max(axis=0) + margin, (canvas.width + margin, canvas.height + margin))
    hi = np.maximum(hi, lo + 1.0)
    span = hi - lo
    cell = max(params.map_cell_px, float(span.max()) / params.map_max_cells)
    # SSIM's default 7x7 window needs at least 7 cells each way.
    cols, rows = (max(7, math.ceil(v / cell) + 1) for v in span)
    return Grid(lo, cell, (rows, cols))


def distance_map(grid: Grid, points: Array, tau_px: float) -> Array:
    """exp(-d/τ), d the distance from each cell to the nearest point (0 everywhere if none)."""
    raster = grid.raster(points)
    if not raster.any():
        return np.zeros(grid.shape)
    d = distance_transform_edt(~raster, sampling=grid.cell_px)
    return np.exp(-np.asarray(d, dtype=np.float64) / tau_px)


def map_ssim(
    reference: Array, ink: Array, tau_px: float, canvas: Canvas, params: ScoringParams
) -> float:
    """SSIM between distance-transformed reference and ink maps (not raw line rasters)."""
    grid = map_grid(reference, ink, tau_px, canvas, params)
    ref_map = distance_map(grid, reference, tau_px)
    ink_map = distance_map(grid, ink, tau_px)
    ssim = structural_similarity(ref_map, ink_map, data_range=1.0)  # type: ignore[no-untyped-call]
    return float(ssim)


def robust_hausdorff_px(reference: Array, ink: Array, cell_px: float) -> float | None:
    """Modified (Dubuisson-Jain) Hausdorff distance on rasters of `cell_px`; None without ink.

    A 2 px raster keeps the error under 1 px at a quarter of the cost of a 1 px one.
    """
    if len(ink) == 0:
        return None
    lo = np.minimum(reference.min(axis=0), ink.min(axis=0))
    size = np.floor((np.maximum(reference.max(axis=0), ink.max(axis=0)) - lo) / cell_px)
    cols, rows = size.astype(np.int64) + 1
    images = []
    for pts in (reference, ink):
        img = np.zeros((rows, cols), dtype=bool)
        ij = np.floor((pts - lo) / cell_px).astype(np.int64)
        img[ij[:, 1], ij[:, 0]] = True
        images.append(img)
    distance = hausdorff_distance(  # type: ignore[no-untyped-call]
        images[0], images[1], method="modified"
    )
    return cell_px * float(distance)
