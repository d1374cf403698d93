"""The orderings a teacher expects from step scores, for every reference shape kind."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from inkstep.lessons import Canvas
from scoring import ScoringParams, StepScore, score_step
from scoring.synthetic import Drawing, draw_step, example_step

CANVAS = Canvas(width=800, height=600)
KINDS = ["line", "circle", "ellipse", "polyline"]
TAU = 8.0


PERFECT = Drawing()


def score(kind: str, drawing: Drawing = PERFECT, tau: float = TAU) -> StepScore:
    step = example_step(kind, tau)
    return score_step(step, CANVAS, draw_step(step, drawing), ScoringParams())


@pytest.mark.parametrize("kind", KINDS)
def test_perfect_trace_scores_about_100_and_passes(kind: str) -> None:
    result = score(kind)
    assert result.accuracy >= 99
    assert result.quality >= 95
    assert result.passed, result.details["failed"]


@pytest.mark.parametrize("kind", KINDS)
def test_shift_within_tolerance_scores_like_perfect(kind: str) -> None:
    perfect = score(kind)
    shifted = score(kind, Drawing(shift=(0.0, 0.75 * TAU)))
    assert abs(shifted.accuracy - perfect.accuracy) <= 1
    assert shifted.passed


@pytest.mark.parametrize("kind", KINDS)
def test_shift_of_two_to_three_tau_scores_clearly_lower_and_fails(kind: str) -> None:
    perfect = score(kind)
    for factor in (2.0, 2.5, 3.0):
        shifted = score(kind, Drawing(shift=(0.0, factor * TAU)))
        assert shifted.accuracy <= perfect.accuracy - 15, factor
        assert not shifted.passed, factor
    assert (
        score(kind, Drawing(shift=(0.0, 3.0 * TAU))).accuracy
        < score(kind, Drawing(shift=(0.0, 2.0 * TAU))).accuracy
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", [0.75, 1.35])
def test_smaller_or_larger_copy_fails(kind: str, scale: float) -> None:
    result = score(kind, Drawing(scale=scale))
    assert not result.passed
    assert "size" in result.details["failed"]
    assert result.accuracy < score(kind).accuracy


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_shape_fails_on_the_shape_gate(kind: str) -> None:
    result = score(kind, Drawing(wrong_shape=True))
    assert not result.passed
    assert "shape" in result.details["failed"]
    assert result.details["shapes"][0]["shape_ok"] is False


def test_square_for_a_circle_fails_even_where_its_ink_is_near() -> None:
    # A square drawn with a generous tolerance: most of its ink lies within 3τ of the circle.
    result = score("circle", Drawing(wrong_shape=True), tau=16.0)
    assert result.details["precision"] > 0.6
    assert "shape" in result.details["failed"]
    assert not result.passed


@pytest.mark.parametrize("kind", KINDS)
def test_partial_shape_fails_on_coverage(kind: str) -> None:
    result = score(kind, Drawing(partial=0.6))
    assert not result.passed
    assert "coverage" in result.details["failed"]
    assert result.details["coverage"] < 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_empty_step_scores_zero_without_exception(kind: str) -> None:
    step = example_step(kind)
    for strokes in ([], [{**s, "deleted": True} for s in draw_step(step)]):
        result = score_step(step, CANVAS, strokes, ScoringParams())
        assert (result.accuracy, result.quality, result.passed) == (0.0, 0.0, False)
        assert "no_ink" in result.details["failed"]
        json.dumps(result.to_payload(), allow_nan=False)


def test_deleted_and_eraser_strokes_are_ignored() -> None:
    step = example_step("circle")
    good = draw_step(step)
    stray: list[dict[str, Any]] = draw_step(step, Drawing(shift=(0.0, 60.0)))
    erased = [{**s, "style": {**s["style"], "tool": "eraser"}} for s in stray]
    undone = [{**s, "deleted": True} for s in stray]
    assert (
        score_step(step, CANVAS, good + erased + undone).to_payload()
        == score_step(step, CANVAS, good).to_payload()
    )


@pytest.mark.parametrize("kind", KINDS)
def test_wobble_lowers_quality_not_accuracy(kind: str) -> None:
    clean = score(kind)
    wobbly = score(kind, Drawing(wobble_px=2.5))
    assert wobbly.quality <= clean.quality - 5
    assert wobbly.accuracy >= clean.accuracy - 1
    assert wobbly.details["quality_lost"]["wobble"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_60hz_and_240hz_samples_score_within_one_point(kind: str) -> None:
    # A hand at ~300 px/s with a wobble 60 px long: slow enough that 60 Hz still resolves it
    # (a wobble faster than 60 Hz's Nyquist limit is simply not in 60 Hz input).
    for drawing in (
        Drawing(speed_px_s=300.0),
        Drawing(speed_px_s=300.0, wobble_px=2.0, wobble_wavelength_px=60.0),
        Drawing(speed_px_s=300.0, pauses=1, pen=True),
    ):
        slow = score(kind, replace(drawing, rate_hz=60.0))
        fast = score(kind, replace(drawing, rate_hz=240.0))
        assert abs(slow.accuracy - fast.accuracy) <= 1
        assert abs(slow.quality - fast.quality) <= 1


def test_payload_is_rounded_plain_json() -> None:
    payload = score("ellipse", Drawing(wobble_px=1.0)).to_payload()
    assert set(payload) == {"accuracy", "quality", "passed", "details"}
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload
    assert payload["accuracy"] == round(payload["accuracy"], 1)
    for key in ("hausdorff_px", "ssim", "precision", "recall", "coverage"):
        assert key in payload["details"]
    shape = payload["details"]["shapes"][0]
    assert {"centre_offset_px", "radius_ratio", "angle_error_deg", "coverage"} <= set(shape)


def test_line_details_report_overshoot_length_and_angle() -> None:
    shape = score("line", Drawing(scale=1.2)).details["shapes"][0]
    assert shape["length_ratio"] == pytest.approx(1.2, abs=0.02)
    assert shape["overshoot_px"] == pytest.approx(0.2 * 503.6, abs=3)
    assert shape["angle_error_deg"] < 0.5


def test_distance_map_ssim_ranks_a_shifted_circle_above_an_empty_canvas() -> None:
    # On raw line rasters an empty canvas beats a circle shifted 10 px; on exp(-d/τ) maps not.
    shifted = score("circle", Drawing(shift=(10.0, 0.0)))
    empty = score_step(example_step("circle"), CANVAS, [])
    assert shifted.details["ssim"] > empty.details["ssim"] + 0.2
    # Modified Hausdorff averages the distances: about 2/π·10 px for a 10 px shift.
    assert 4.0 <= shifted.details["hausdorff_px"] <= 8.0
