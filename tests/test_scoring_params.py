"""Scoring params: defaults, files, clear errors, and per-step overrides from lessons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inkstep.lessons import Step
from scoring import ParamsError, ScoringParams, load_params, save_params
from scoring.synthetic import example_step


def test_none_gives_the_defaults() -> None:
    assert load_params(None) == ScoringParams()


def test_a_saved_file_loads_back_equal(tmp_path: Path) -> None:
    params = ScoringParams(zero_credit_tau=2.5, min_coverage=0.8)
    path = save_params(params, tmp_path / "deep" / "params.json")
    assert load_params(path) == params
    assert load_params(str(path)) == params


def test_a_partial_file_fills_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"gate_residual_tau": 0.5}))
    assert load_params(path).gate_residual_tau == 0.5
    assert load_params(path).min_coverage == ScoringParams().min_coverage


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"min_coverage": 1.5}, "min_coverage"),
        ({"gate_residual_tau": "wide"}, "gate_residual_tau"),
        ({"zero_credit_tau": 0.5}, "zero_credit_tau"),
        ({"quality_weights": {"wobble": 1.0}}, "missing features"),
        ({"quality_bands": {"wobble": {"good": 2, "bad": 1}}}, "quality_bands.wobble"),
        ({"min_coverge": 0.5}, "min_coverge"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ParamsError, match=field) as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_unreadable_files_raise_params_errors(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="cannot read"):
        load_params(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ParamsError, match=r"broken\.json"):
        load_params(tmp_path / "broken.json")


def _with(step: Step, **extra: object) -> Step:
    return Step.model_validate({**step.model_dump(by_alias=True), **extra})


def test_step_weights_and_thresholds_override_the_params() -> None:
    step = _with(
        example_step("line"),
        weights={"wobble": 5, "precision": 0.5},
        quality_thresholds={"wobble": 2.0, "jitter_good": 0.1},
    )
    params = ScoringParams().for_step(step)
    assert params.quality_weights["wobble"] == 5
    assert params.precision_weight == 0.5
    assert params.quality_bands["wobble"].bad == 2.0
    assert params.quality_bands["jitter"].good == 0.1
    assert ScoringParams().for_step(example_step("line")) == ScoringParams()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"weights": {"wobbel": 1}}, "weights.wobbel"),
        ({"quality_thresholds": {"speed": 1}}, "quality_thresholds.speed"),
        ({"quality_thresholds": {"wobble": 0.1}}, "wobble"),
    ],
)
def test_bad_step_overrides_name_the_step_and_key(extra: dict[str, object], field: str) -> None:
    step = _with(example_step("circle"), **extra)
    with pytest.raises(ParamsError, match=field) as info:
        ScoringParams().for_step(step)
    assert "circle-step" in str(info.value)
