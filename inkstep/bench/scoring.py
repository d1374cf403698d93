"""`inkstep bench scoring`: per-step scoring latency and parallel throughput on Ray."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import ray

from inkstep.lessons import Canvas, Lesson, Step, load_lessons_dir
from inkstep.settings import PACKAGE_ROOT
from scoring import ScoringParams, score_step
from scoring.synthetic import Drawing, draw_step

CANVAS = Canvas(width=800, height=600)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `inkstep bench scoring`."""
    parser.add_argument("--strokes", type=int, default=20, help="strokes per step (20)")
    parser.add_argument("--repeats", type=int, default=100, help="latency samples (100)")
    parser.add_argument("--sessions", type=int, default=50, help="sessions (50)")
    parser.add_argument("--completions", type=int, default=200, help="step completions (200)")
    parser.add_argument("--address", default=None, help="Ray address (default: start locally)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _bench_step(lesson: Lesson) -> Step:
    """Every construction shape of a lesson in one step: a busy step worth 20 strokes."""
    shapes = [shape.model_dump() for step in lesson.steps for shape in step.reference]
    return Step.model_validate(
        {
            "id": "bench",
            "title": "All shapes",
            "instruction": "",
            "reference": shapes,
            "tolerance_px": 8,
            "pass": {"accuracy": 70, "quality": 0},
        }
    )


def _strokes(step: Step, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` pen strokes over the step, pieces split so there are enough of them."""
    pieces = 1
    while True:
        strokes = draw_step(step, Drawing(pieces=pieces, pen=True, jitter_px=0.4, seed=seed))
        if len(strokes) >= count:
            return strokes[:count]
        pieces += 1


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _latency_ms(
    step: Step, strokes: list[dict[str, Any]], repeats: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds per score_step call."""
    params = ScoringParams()
    score_step(step, CANVAS, strokes, params)  # warm caches (reference sampling, imports)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        score_step(step, CANVAS, strokes, params)
        wall.append(1000.0 * (time.perf_counter() - start))
        cpu.append(1000.0 * (time.process_time() - start_cpu))
    return wall, cpu


def _workload(
    lesson: Lesson, sessions: int, completions: int
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """`completions` step completions spread over `sessions` sessions, each its own drawing."""
    work = []
    for i in range(completions):
        step = lesson.steps[i % len(lesson.steps)]
        session = i % sessions
        drawing = Drawing(pen=True, jitter_px=0.4, pieces=2, seed=session * 1000 + i)
        work.append((step.model_dump(mode="json", by_alias=True), draw_step(step, drawing)))
    return work


def _throughput(
    work: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> tuple[float, float, int]:
    """Completions per second: one worker in this process, then all as parallel Ray tasks."""
    from scoring.tasks import score_step_json, score_step_task

    canvas = CANVAS.model_dump()
    params = ScoringParams().model_dump(mode="json")
    start = time.perf_counter()
    for step_json, strokes in work:
        score_step_json(step_json, canvas, strokes, params)
    single = len(work) / (time.perf_counter() - start)

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
    # Warm-up: start the workers and import scoring in each before timing.
    ray.get([score_step_task.remote(s, canvas, k, params) for s, k in work[: 2 * cpus]])
    canvas_ref, params_ref = ray.put(canvas), ray.put(params)
    start = time.perf_counter()
    ray.get([score_step_task.remote(s, canvas_ref, k, params_ref) for s, k in work])
    parallel = len(work) / (time.perf_counter() - start)
    return single, parallel, cpus


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print a table (or JSON with --json); 0 on success."""
    lessons = load_lessons_dir(PACKAGE_ROOT / "lessons")
    lesson = lessons.get("face-construction") or next(iter(lessons.values()))
    step = _bench_step(lesson)
    strokes = _strokes(step, args.strokes, seed=1)
    latency, cpu = _latency_ms(step, strokes, args.repeats)

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        single, parallel, cpus = _throughput(_workload(lesson, args.sessions, args.completions))
    finally:
        if started_ray:
            ray.shutdown()

    result = {
        "strokes_per_step": len(strokes),
        "canvas": f"{CANVAS.width}x{CANVAS.height}",
        "latency_p50_ms": round(statistics.median(latency), 2),
        "latency_p95_ms": round(_percentile(latency, 0.95), 2),
        # CPU time is what the step costs; wall time also shows how busy the machine was.
        "latency_p50_cpu_ms": round(statistics.median(cpu), 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "completions": args.completions,
        "sessions": args.sessions,
        "ray_cpus": cpus,
        "single_worker_per_s": round(single, 1),
        "ray_tasks_per_s": round(parallel, 1),
        "speedup": round(parallel / single, 2),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0
