"""Lesson definitions: the JSON format, its validation, and loading the shipped lessons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inkstep.protocol import ID_PATTERN

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class LineShape(_Model):
    kind: Literal["line"]
    x1: Finite
    y1: Finite
    x2: Finite
    y2: Finite


class PolylineShape(_Model):
    kind: Literal["polyline"]
    points: list[tuple[Finite, Finite]] = Field(min_length=2)
    closed: bool = False


class CircleShape(_Model):
    kind: Literal["circle"]
    cx: Finite
    cy: Finite
    r: Finite = Field(gt=0)


class EllipseShape(_Model):
    kind: Literal["ellipse"]
    cx: Finite
    cy: Finite
    rx: Finite = Field(gt=0)
    ry: Finite = Field(gt=0)
    angle_deg: Finite = 0.0


Shape = Annotated[
    LineShape | PolylineShape | CircleShape | EllipseShape, Field(discriminator="kind")
]


class Canvas(_Model):
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)


class PassRule(_Model):
    accuracy: Finite = Field(ge=0, le=100)
    quality: Finite = Field(default=0, ge=0, le=100)


class Step(_Model):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    instruction: str = Field(max_length=2000)
    reference: list[Shape] = Field(min_length=1)
    tolerance_px: Finite = Field(gt=0, le=200)
    pass_rule: PassRule = Field(alias="pass")
    weights: dict[str, Finite] | None = None
    quality_thresholds: dict[str, Finite] | None = None

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True
    )


class Lesson(_Model):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    required_plan: Literal["free", "pro"] = "free"
    canvas: Canvas
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Lesson:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids must be unique, got {ids}")
        return self

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def summary(self) -> dict[str, object]:
        """The public listing form (no reference shapes)."""
        return {
            "id": self.id,
            "title": self.title,
            "required_plan": self.required_plan,
            "canvas": self.canvas.model_dump(),
            "steps": [
                {"id": s.id, "title": s.title, "instruction": s.instruction} for s in self.steps
            ],
        }

    def to_json_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LessonError(ValueError):
    """A lesson file that does not validate; the message names the file and the field."""


def parse_lesson(data: object, source: str = "lesson") -> Lesson:
    try:
        return Lesson.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise LessonError(f"{source}: {problems}") from None


def load_lesson_file(path: Path) -> Lesson:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LessonError(f"{path}: {exc}") from None
    return parse_lesson(data, str(path))


def load_lessons_dir(folder: Path) -> dict[str, Lesson]:
    """Every `*.json` lesson in a folder, by id."""
    lessons = [load_lesson_file(p) for p in sorted(folder.glob("*.json"))]
    return {lesson.id: lesson for lesson in lessons}
