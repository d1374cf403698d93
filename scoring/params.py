"""Every threshold and weight of the scoring, in one file-loadable object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inkstep.lessons import Step

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

#: The quality features, in the order they are reported.
QUALITY_FEATURES = (
    "wobble",
    "jitter",
    "speed_variation",
    "hesitation",
    "corrections",
    "overdraw",
    "pressure",
)
#: The accuracy weights a step may override (a weighted harmonic mean of the two).
ACCURACY_WEIGHTS = ("precision", "recall")


class ParamsError(ValueError):
    """A params file or a step override that does not validate; the message names the field."""


class Band(BaseModel):
    """A feature scores 1 at or below `good` and falls linearly to 0 at `bad`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    good: NonNegative
    bad: Positive

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.bad <= self.good:
            raise ValueError(f"bad ({self.bad}) must be greater than good ({self.good})")
        return self


def _default_weights() -> dict[str, float]:
    return {
        "wobble": 3.0,
        "jitter": 1.5,
        "speed_variation": 1.0,
        "hesitation": 1.5,
        "corrections": 1.0,
        "overdraw": 1.0,
        "pressure": 1.0,
    }


def _default_bands() -> dict[str, Band]:
    # Units: wobble/jitter in px, speed_variation a coefficient of variation, hesitation in
    # pauses per stroke, corrections in strokes, overdraw a fraction of ink, pressure a CV.
    return {
        "wobble": Band(good=0.6, bad=3.0),
        "jitter": Band(good=0.35, bad=2.0),
        "speed_variation": Band(good=0.55, bad=1.3),
        "hesitation": Band(good=0.0, bad=2.0),
        "corrections": Band(good=0.0, bad=5.0),
        "overdraw": Band(good=0.08, bad=0.6),
        "pressure": Band(good=0.12, bad=0.45),
    }


class ScoringParams(BaseModel):
    """Thresholds and weights for accuracy, the shape gate and quality (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: int = 1
    # Accuracy: strokes and references are resampled every `sample_step_px`; ink within
    # full_credit_tau·τ of the reference counts fully, falling linearly to 0 at zero_credit_tau·τ.
    sample_step_px: float = Field(default=1.0, ge=0.25, le=5.0)
    full_credit_tau: Positive = 1.0
    zero_credit_tau: Positive = 3.0
    precision_weight: Positive = 1.0
    recall_weight: Positive = 1.0
    # Pass requirements beyond the lesson's accuracy/quality thresholds.
    min_coverage: Fraction = 0.85
    min_precision: Fraction = 0.85
    # Shape gate: trimmed RMS residual of the reference kind's model fitted to the ink.
    gate_residual_tau: Positive = 0.75
    gate_trim_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    gate_min_points: int = Field(default=12, ge=3)
    gate_penalty: NonNegative = 1.0
    # Size: radius (circle, ellipse) or each end (line, edge) within this many τ.
    size_tolerance_tau: Positive = 1.5
    # Distance maps (SSIM, Hausdorff): a coarse grid around reference and ink.
    map_cell_px: float = Field(default=4.0, ge=1.0, le=32.0)
    map_max_cells: int = Field(default=160, ge=16, le=2048)
    map_margin_tau: NonNegative = 3.0
    hausdorff_cell_px: float = Field(default=2.0, ge=0.5, le=16.0)
    # Quality.
    jitter_window_px: int = Field(default=15, ge=5)
    # The wobble window is capped at a share of the stroke: on small, tight shapes (an eye)
    # a long window would read the shape's own curvature as wobble.
    wobble_window_px: int = Field(default=91, ge=7)
    wobble_window_share: float = Field(default=0.25, gt=0, le=1)
    wobble_trim_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    speed_window_ms: Positive = 50.0
    hesitation_speed_px_s: Positive = 40.0
    hesitation_min_ms: Positive = 150.0
    overdraw_radius_px: Positive = 3.0
    pressure_min_std: NonNegative = 0.02
    extra_strokes_allowed: int = Field(default=1, ge=0)
    quality_weights: dict[str, NonNegative] = Field(default_factory=_default_weights)
    quality_bands: dict[str, Band] = Field(default_factory=_default_bands)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringParams:
        if self.zero_credit_tau <= self.full_credit_tau:
            raise ValueError(
                f"zero_credit_tau ({self.zero_credit_tau}) must be greater than "
                f"full_credit_tau ({self.full_credit_tau})"
            )
        for name, table in (
            ("quality_weights", self.quality_weights),
            ("quality_bands", self.quality_bands),
        ):
            unknown = sorted(set(table) - set(QUALITY_FEATURES))
            if unknown:
                raise ValueError(f"{name}: unknown features {unknown}; known: {QUALITY_FEATURES}")
            missing = sorted(set(QUALITY_FEATURES) - set(table))
            if missing:
                raise ValueError(f"{name}: missing features {missing}")
        if sum(self.quality_weights.values()) <= 0:
            raise ValueError("quality_weights: at least one weight must be positive")
        return self

    def for_step(self, step: Step) -> ScoringParams:
        """These params with the step's `weights` and `quality_thresholds` applied.

        `weights` keys are quality features or "precision"/"recall"; `quality_thresholds` keys
        are `<feature>` (the `bad` bound, where the feature scores 0) or `<feature>_good`.
        """
        if not step.weights and not step.quality_thresholds:
            return self
        update: dict[str, object] = {}
        weights = dict(self.quality_weights)
        for key, value in (step.weights or {}).items():
            if key in ACCURACY_WEIGHTS:
                update[f"{key}_weight"] = value
            elif key in QUALITY_FEATURES:
                weights[key] = value
            else:
                raise ParamsError(
                    f"step {step.id!r}: weights.{key}: unknown weight; "
                    f"known: {ACCURACY_WEIGHTS + QUALITY_FEATURES}"
                )
        bands = {k: b.model_dump() for k, b in self.quality_bands.items()}
        for key, value in (step.quality_thresholds or {}).items():
            good = key.endswith("_good")
            feature, bound = (key.removesuffix("_good"), "good") if good else (key, "bad")
            if feature not in QUALITY_FEATURES:
                raise ParamsError(
                    f"step {step.id!r}: quality_thresholds.{key}: unknown feature; "
                    f"use one of {QUALITY_FEATURES}, optionally suffixed _good"
                )
            bands[feature][bound] = value
        data = {**self.model_dump(), **update, "quality_weights": weights, "quality_bands": bands}
        try:
            return ScoringParams.model_validate(data)
        except ValidationError as exc:
            raise ParamsError(f"step {step.id!r}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()[:5]
    )


def parse_params(data: object, source: str = "params") -> ScoringParams:
    """Validate params from already-decoded JSON, raising ParamsError naming the field."""
    try:
        return ScoringParams.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(f"{source}: {_describe(exc)}") from None


def load_params(path: str | Path | None) -> ScoringParams:
    """The defaults when `path` is None, else the params in that JSON file (validated)."""
    if path is None:
        return ScoringParams()
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ParamsError(f"{file}: cannot read scoring params: {exc}") from None
    return parse_params(data, str(file))


def save_params(params: ScoringParams, path: str | Path) -> Path:
    """Write params as JSON (what `load_params` and `INKSTEP_SCORING_PARAMS` read)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(params.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    return file
