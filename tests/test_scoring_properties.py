"""Properties over many drawings: widening τ never lowers a score."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inkstep.lessons import Canvas, Step
from scoring import ScoringParams, score_step
from scoring.synthetic import Drawing, draw_step, example_step

CANVAS = Canvas(width=800, height=600)
PARAMS = ScoringParams()

drawings = st.builds(
    Drawing,
    shift=st.tuples(st.floats(-40, 40), st.floats(-40, 40)),
    scale=st.floats(0.7, 1.4),
    partial=st.floats(0.2, 1.0),
    wobble_px=st.floats(0, 4),
    jitter_px=st.floats(0, 1.5),
    pieces=st.integers(1, 3),
    wrong_shape=st.booleans(),
    seed=st.integers(0, 1000),
)


def _with_tolerance(step: Step, tau: float) -> Step:
    return step.model_copy(update={"tolerance_px": tau})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["line", "circle", "ellipse", "polyline"]),
    drawing=drawings,
    tau=st.floats(2, 30),
    widen=st.floats(1.0, 3.0),
)
def test_widening_tolerance_never_lowers_a_score(
    kind: str, drawing: Drawing, tau: float, widen: float
) -> None:
    step = example_step(kind)
    strokes = draw_step(step, drawing)
    narrow = score_step(_with_tolerance(step, tau), CANVAS, strokes, PARAMS)
    wide = score_step(_with_tolerance(step, tau * widen), CANVAS, strokes, PARAMS)
    assert wide.accuracy >= narrow.accuracy - 1e-9
    assert wide.quality >= narrow.quality - 1e-9
    assert 0.0 <= narrow.accuracy <= 100.0
    assert 0.0 <= narrow.quality <= 100.0
