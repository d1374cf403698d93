"""Packing strokes for a Ray task, and resampling all of a step's strokes at once."""

from __future__ import annotations

from typing import Any

import numpy as np

from scoring.geometry import ink_from_strokes, pack_strokes, path_length, resample_path
from scoring.synthetic import Drawing, draw_step, example_step


def _stroke(points: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"points": points, "style": {"tool": "pen"}, "deleted": False, **extra}


def test_pack_keeps_live_strokes_in_order() -> None:
    strokes = [
        _stroke([[0, 0, 0.5, 0], [10, 0, 0.5, 16]]),
        _stroke([[5, 5, 0.5, 0], [6, 6, 0.5, 8]], deleted=True),
        _stroke([[7, 7, 0.5, 0], [8, 8, 0.5, 8]], style={"tool": "eraser"}),
        _stroke([]),
        _stroke([[20, 0, 0.4, 40], [20, 10, 0.6, 56], [20, 20, 0.7, 72]]),
    ]
    packed = pack_strokes(strokes)
    assert packed.counts.tolist() == [2, 3]
    assert packed.points[:, 0].tolist() == [0, 10, 20, 20, 20]
    assert pack_strokes(packed) is packed


def test_pack_zero_fills_short_rows() -> None:
    packed = pack_strokes([_stroke([[1, 2], [3, 4, 0.5], [5, 6, 0.5, 9, 1]])])
    assert packed.points.tolist() == [[1, 2, 0, 0], [3, 4, 0.5, 0], [5, 6, 0.5, 9]]
    assert pack_strokes([]).points.shape == (0, 4)


def test_all_strokes_resample_as_each_alone() -> None:
    step = example_step("ellipse")
    strokes = draw_step(step, Drawing(pieces=5, pen=True, jitter_px=0.6, seed=2))
    # A repeated point and a single-point stroke take the slower path.
    strokes[1]["points"].insert(3, list(strokes[1]["points"][3]))
    strokes.append(_stroke([[300, 300, 0.5, 0]]))
    inks = ink_from_strokes(strokes, 1.0)
    assert len(inks) == len(strokes)
    for ink, stroke in zip(inks, strokes, strict=True):
        raw = np.asarray(stroke["points"], dtype=np.float64)
        expected = resample_path(raw[:, :2], 1.0)
        assert np.array_equal(ink.raw, raw)
        assert np.array_equal(ink.path, expected)
        assert ink.length_px == path_length(expected)
