"""Accuracy: how close the ink lies to the reference, and how much of it the ink covers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree
from skimage.metrics import structural_similarity

from inkstep.lessons import Canvas
from scoring.geometry import Array, Reference
from scoring.params import ScoringParams


@dataclass(frozen=True)
class Matching:
    """Nearest-neighbour distances both ways between ink samples and reference samples."""

    ink_to_ref_px: Array  # per ink sample
    ink_part: NDArray[np.int64]  # nearest reference part of each ink sample
    ref_to_ink_px: Array  # per reference sample (inf when there is no ink)


def match(reference: Reference, ink: Array, ink_tree: cKDTree | None = None) -> Matching:
    """Pair every ink sample with its nearest reference sample and the other way round.

    `ink_tree`: a k-d tree of `ink`, if the caller has one (quality's overdraw uses it too).
    """
    if len(ink) == 0:
        inf = np.full(len(reference.samples), np.inf)
        return Matching(np.empty(0), np.empty(0, dtype=np.int64), inf)
    d_ink, idx = reference.tree.query(ink)
    d_ref, _ = (cKDTree(ink) if ink_tree is None else ink_tree).query(reference.samples)
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


def bounds(*point_sets: Array) -> tuple[Array, Array]:
    """Lowest and highest x and y over (n, 2) point sets (empty ones skipped; not all empty).

    Column by column: numpy's axis-0 reductions over two-column arrays cost ~10x more.
    """
    lo = [min(float(p[:, k].min()) for p in point_sets if len(p)) for k in (0, 1)]
    hi = [max(float(p[:, k].max()) for p in point_sets if len(p)) for k in (0, 1)]
    return np.array(lo), np.array(hi)


def set_cells(image: NDArray[np.bool_]) -> NDArray[np.int64]:
    """(row, col) of the set cells in row-major order: np.argwhere at a tenth of its cost."""
    rows, cols = np.divmod(np.flatnonzero(image), image.shape[1])
    return np.column_stack((rows, cols))


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
    pts_lo, pts_hi = bounds(reference, ink)
    lo = np.maximum(pts_lo - margin, (-margin, -margin))
    hi = np.minimum(pts_hi + margin, (canvas.width + margin, canvas.height + margin))
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

    A 2 px raster keeps the error under 1 px at a quarter of the cost of a 1 px one. The
    value is skimage's `hausdorff_distance(..., method="modified")` on the two rasters.
    """
    if len(ink) == 0:
        return None
    lo, hi = bounds(reference, ink)
    size = np.floor((hi - lo) / cell_px)
    cols, rows = size.astype(np.int64) + 1
    images = []
    for pts in (reference, ink):
        img = np.zeros((rows, cols), dtype=bool)
        ij = np.floor((pts - lo) / cell_px).astype(np.int64)
        img[ij[:, 1], ij[:, 0]] = True
        images.append(img)
    ref_cells, ink_cells = (set_cells(img) for img in images)
    to_ref = float(nearest_cell_distances(ink_cells, images[0]).mean())
    to_ink = float(nearest_cell_distances(ref_cells, images[1]).mean())
    return cell_px * max(to_ref, to_ink)


#: Offsets searched cell by cell before falling back to a k-d tree (a good drawing's cells
#: are nearly all within a few cells of the other raster's).
_RING_RADIUS_CELLS = 3


def _rings(radius: int) -> list[tuple[float, NDArray[np.int64], NDArray[np.int64]]]:
    """(distance, row offsets, column offsets) of the lattice offsets within `radius`, nearest
    first, offsets at the same distance together."""
    span = np.arange(-radius, radius + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(span, span, indexing="ij"))
    d2 = dy * dy + dx * dx
    return [
        (math.sqrt(float(v)), dy[d2 == v], dx[d2 == v])
        for v in np.unique(d2[d2 <= radius * radius]).tolist()
    ]


_RINGS = _rings(_RING_RADIUS_CELLS)


def nearest_cell_distances(cells: NDArray[np.int64], image: NDArray[np.bool_]) -> Array:
    """Distance (in cells) from each (row, col) of `cells` to the nearest set cell of `image`.

    Exact, and the same numbers a k-d tree of the set cells gives: the lattice offsets are
    tried nearest first, so the first hit is the nearest; cells with nothing within the
    search radius are left to a k-d tree. A raster lookup per offset is far cheaper than a
    tree query per cell when, as for a good drawing, most cells have a neighbour close by.
    """
    out = np.empty(len(cells))
    if not image.any():
        out[:] = np.inf
        return out
    r = _RING_RADIUS_CELLS
    padded = np.zeros((image.shape[0] + 2 * r, image.shape[1] + 2 * r), dtype=bool)
    padded[r:-r, r:-r] = image
    todo = np.arange(len(cells))
    rows, cols = cells[:, 0] + r, cells[:, 1] + r
    for distance, dy, dx in _RINGS:
        hit = padded[rows[:, None] + dy, cols[:, None] + dx].any(axis=1)
        out[todo[hit]] = distance
        miss = ~hit
        todo, rows, cols = todo[miss], rows[miss], cols[miss]
        if len(todo) == 0:
            return out
    out[todo] = cKDTree(set_cells(image)).query(cells[todo])[0]
    return out
