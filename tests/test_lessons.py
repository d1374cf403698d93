"""The shipped lessons: they validate, a perfect drawing passes every step, a poor one fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inkstep.lessons import Lesson, LessonError, load_lesson_file, load_lessons_dir, parse_lesson
from inkstep.settings import PACKAGE_ROOT
from scoring import ScoringParams, score_step
from scoring.geometry import build_reference
from scoring.synthetic import Drawing, draw_step

LESSONS_DIR = PACKAGE_ROOT / "lessons"
LESSONS = load_lessons_dir(LESSONS_DIR)
STEPS = [
    pytest.param(lesson, step.id, id=f"{lesson.id}/{step.id}")
    for lesson in LESSONS.values()
    for step in lesson.steps
]


def test_every_shipped_lesson_validates_and_has_three_steps() -> None:
    files = sorted(LESSONS_DIR.glob("*.json"))
    assert len(files) >= 4
    assert len(LESSONS) == len(files)
    for path in files:
        lesson = load_lesson_file(path)
        assert len(lesson.steps) >= 3, path
        assert path.stem == lesson.id
        assert parse_lesson(lesson.to_json_dict()) == lesson  # round-trips for import/export


def test_the_cube_needs_pro_and_the_basics_are_free() -> None:
    assert LESSONS["cube-two-point"].required_plan == "pro"
    assert LESSONS["circles-101"].required_plan == "free"


@pytest.mark.parametrize(("lesson", "step_id"), STEPS)
def test_step_overrides_are_known_and_shapes_fit_the_canvas(lesson: Lesson, step_id: str) -> None:
    step = lesson.step(step_id)
    assert step is not None
    ScoringParams().for_step(step)  # raises on unknown weight or threshold names
    samples = build_reference(step.reference, 1.0).samples
    assert samples.min() >= 0
    assert samples[:, 0].max() <= lesson.canvas.width
    assert samples[:, 1].max() <= lesson.canvas.height


@pytest.mark.parametrize(("lesson", "step_id"), STEPS)
def test_a_good_drawing_passes_and_a_poor_one_does_not(lesson: Lesson, step_id: str) -> None:
    step = lesson.step(step_id)
    assert step is not None
    good = score_step(step, lesson.canvas, draw_step(step, Drawing(pen=True, jitter_px=0.3)))
    assert good.passed, (good.accuracy, good.quality, good.details["failed"])
    shift = 3.0 * step.tolerance_px
    for poor in (Drawing(shift=(shift, shift)), Drawing(partial=0.5), Drawing(scale=0.6)):
        result = score_step(step, lesson.canvas, draw_step(step, poor))
        assert not result.passed, poor


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["steps"][0].update(tolerance_px=-1), "steps.0.tolerance_px"),
        (lambda d: d["steps"][1]["reference"][0].update(r="big"), "steps.1.reference.0.circle.r"),
        (lambda d: d["steps"][0].pop("pass"), "steps.0.pass"),
        (lambda d: d.update(required_plan="gold"), "required_plan"),
        (lambda d: d["steps"][0]["reference"].append({"kind": "square"}), "steps.0.reference.1"),
    ],
)
def test_a_bad_lesson_gives_an_error_naming_the_field(
    tmp_path: Path, change: object, field: str
) -> None:
    data = json.loads((LESSONS_DIR / "circles-101.json").read_text())
    assert callable(change)
    change(data)
    path = _write(tmp_path, data)
    with pytest.raises(LessonError) as info:
        load_lesson_file(path)
    assert field in str(info.value)
    assert str(path) in str(info.value)
