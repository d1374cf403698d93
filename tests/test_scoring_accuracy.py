"""The raster Hausdorff distance agrees with scikit-image's, cell for cell."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.metrics import hausdorff_distance

from scoring.accuracy import nearest_cell_distances, robust_hausdorff_px, set_cells


@pytest.mark.parametrize("seed", range(20))
def test_nearest_cell_distances_match_a_kd_tree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 80, 2)
    # From dense (every cell has a neighbour close by) to sparse (most need the k-d tree).
    image = rng.random((rows, cols)) < rng.choice([0.002, 0.02, 0.2])
    image[rng.integers(rows), rng.integers(cols)] = True
    cells = np.argwhere(rng.random((rows, cols)) < 0.3)
    expected = cKDTree(np.argwhere(image)).query(cells)[0] if len(cells) else np.empty(0)
    assert np.array_equal(nearest_cell_distances(cells, image), expected)
    assert np.array_equal(set_cells(image), np.argwhere(image))


@pytest.mark.parametrize("shift", [0.0, 3.0, 40.0])
def test_hausdorff_is_skimage_on_the_rasters(shift: float) -> None:
    t = np.linspace(0, 2 * np.pi, 900)
    reference = np.column_stack((400 + 150 * np.cos(t), 300 + 150 * np.sin(t)))
    rng = np.random.default_rng(1)
    ink = reference[::2] + rng.normal(0, 1.5, (450, 2)) + (shift, 0.0)
    cell = 2.0
    lo = np.minimum(reference.min(axis=0), ink.min(axis=0))
    hi = np.maximum(reference.max(axis=0), ink.max(axis=0))
    cols, rows = np.floor((hi - lo) / cell).astype(np.int64) + 1
    images = []
    for pts in (reference, ink):
        img = np.zeros((rows, cols), dtype=bool)
        ij = np.floor((pts - lo) / cell).astype(np.int64)
        img[ij[:, 1], ij[:, 0]] = True
        images.append(img)
    expected = cell * hausdorff_distance(  # type: ignore[no-untyped-call]
        images[0], images[1], method="modified"
    )
    assert robust_hausdorff_px(reference, ink, cell) == expected
