"""Quality features: each known fault lowers its own feature, and only it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inkstep.lessons import Canvas
from scoring import ScoringParams, StepScore, score_step
from scoring.quality import mean_std
from scoring.synthetic import Drawing, draw_step, example_step

CANVAS = Canvas(width=800, height=600)


def score(drawing: Drawing, kind: str = "circle") -> StepScore:
    step = example_step(kind)
    return score_step(step, CANVAS, draw_step(step, drawing), ScoringParams())


def features(result: StepScore) -> dict[str, Any]:
    return dict(result.details["quality_features"])


@pytest.mark.parametrize(
    ("fault", "feature"),
    [
        (Drawing(wobble_px=3.0), "wobble"),
        (Drawing(pauses=2), "hesitation"),
        (Drawing(retrace=True), "overdraw"),
        (Drawing(pieces=5), "corrections"),
    ],
)
def test_each_fault_lowers_quality_through_its_feature(fault: Drawing, feature: str) -> None:
    clean, faulty = score(Drawing()), score(fault)
    assert faulty.quality < clean.quality - 3
    lost = faulty.details["quality_lost"]
    assert lost[feature] == max(lost.values()), lost
    assert faulty.accuracy >= clean.accuracy - 2


def test_jitter_raises_the_jitter_feature() -> None:
    # Per-sample noise spreads over every wavelength, so it also reads partly as wobble.
    clean, shaky = score(Drawing()), score(Drawing(jitter_px=1.5))
    assert features(shaky)["jitter"] > features(clean)["jitter"] + 0.3
    assert shaky.details["quality_lost"]["jitter"] > 0
    assert shaky.quality < clean.quality - 3
    assert shaky.accuracy >= clean.accuracy - 2


def test_hesitations_are_counted_per_stroke() -> None:
    assert features(score(Drawing()))["hesitation"] == 0
    assert features(score(Drawing(pauses=2)))["hesitation"] == 2


def test_pressure_counts_only_when_it_varies() -> None:
    mouse = score(Drawing())
    assert features(mouse)["pressure"] is None
    assert mouse.details["quality_subscores"]["pressure"] is None
    pen = score(Drawing(pen=True))
    assert features(pen)["pressure"] is not None
    assert pen.quality == pytest.approx(mouse.quality, abs=1)


def test_erratic_pen_pressure_lowers_quality() -> None:
    step = example_step("line")
    strokes = draw_step(step, Drawing(pen=True))
    for stroke in strokes:
        for i, point in enumerate(stroke["points"]):
            point[2] = 0.2 if i % 2 else 0.9
    erratic = score_step(step, CANVAS, strokes)
    assert erratic.details["quality_lost"]["pressure"] > 5


def test_untimed_points_skip_the_speed_features() -> None:
    step = example_step("circle")
    strokes = draw_step(step)
    for stroke in strokes:
        stroke["points"] = [p[:2] for p in stroke["points"]]  # [x, y] only
    result = score_step(step, CANVAS, strokes)
    assert features(result)["speed_variation"] is None
    assert features(result)["hesitation"] is None
    assert result.accuracy >= 99
    assert result.quality >= 95


def test_a_two_stroke_circle_is_not_a_correction() -> None:
    assert features(score(Drawing(pieces=2)))["corrections"] == 0
    assert features(score(Drawing(pieces=4)))["corrections"] == 2


@pytest.mark.parametrize("size", [1, 2, 7, 9, 130, 1001])
def test_mean_std_is_numpys_bit_for_bit(size: int) -> None:
    values = np.random.default_rng(size).gamma(2.0, 3.0, size)
    assert mean_std(values) == (float(values.mean()), float(values.std()))
