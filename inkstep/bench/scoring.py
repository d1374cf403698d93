"""`inkstep bench scoring`: per-step scoring latency and parallel throughput on Ray.

Three ways through the same workload, alternating round by round: one worker in this
process; as many plain processes as Ray has CPUs, started together (no Ray at all: the
most this machine's cores give, the ceiling); and Ray, the way the session actor submits
a completion (`scoring.tasks.score_remote`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import psutil
import ray

from inkstep.bench.harness import print_json
from inkstep.lessons import Canvas, Lesson, Step, load_lessons_dir
from inkstep.local_ray import start_local_ray
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput rounds, single, processes and Ray alternating (3)",
    )
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
    drawing = Drawing(pen=True, jitter_px=0.4, seed=seed)
    # Each shape outline (a polyline edge counts as one) becomes `pieces` strokes.
    pieces = max(1, math.ceil(count / len(draw_step(step, drawing))))
    while True:
        strokes = draw_step(step, replace(drawing, pieces=pieces))
        if len(strokes) >= count:
            return strokes[:count]
        pieces += 1


def _round_or_none(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


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


Work = list[tuple[str, list[dict[str, Any]]]]


def _workload(lesson: Lesson, sessions: int, completions: int, strokes: int) -> Work:
    """`completions` completions of the lesson's steps over `sessions` sessions, as (step
    JSON, strokes): each its own drawing of `strokes` strokes, like the latency figure's."""
    steps = [(step.model_dump_json(by_alias=True), step) for step in lesson.steps]
    work = []
    for i in range(completions):
        step_json, step = steps[i % len(steps)]
        session = i % sessions
        work.append((step_json, _strokes(step, strokes, seed=session * 1000 + i)))
    return work


@dataclass(frozen=True)
class Throughput:
    """Completions per second each way (medians over rounds) and what one costs in CPU."""

    single_per_s: float
    processes_per_s: float
    ray_per_s: float
    ray_cpus: int
    single_cpu_ms: float  # per completion, this process
    processes_cpu_ms: float  # per completion, this process and the plain processes
    ray_cpu_ms: float | None  # per completion, this process and the local Ray's (None: remote)


def _score_share(conn: Connection, work: Work, canvas_json: str, params_json: str) -> None:
    """A plain process of the ceiling round: scores its share each time it is told to go."""
    from scoring.tasks import pack_strokes, score_step_json

    for step_json, strokes in dict(work).items():  # as the other two ways: warm first
        score_step_json(step_json, canvas_json, pack_strokes(strokes), params_json)
    conn.send(None)
    while conn.recv():
        conn.send([score_step_json(s, canvas_json, pack_strokes(k), params_json) for s, k in work])


@contextlib.contextmanager
def _plain_processes(
    work: Work, count: int, canvas_json: str, params_json: str
) -> Iterator[list[tuple[BaseProcess, Connection]]]:
    """`count` fresh processes (spawned: nothing inherited from this one), each holding every
    `count`-th completion of the workload, warmed up and waiting for the word to go."""
    context = multiprocessing.get_context("spawn")
    started: list[tuple[BaseProcess, Connection]] = []
    try:
        for i in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_score_share,
                args=(theirs, work[i::count], canvas_json, params_json),
                name=f"inkstep-bench-scoring-{i}",
                daemon=True,
            )
            process.start()
            theirs.close()
            started.append((process, ours))
        for _, conn in started:
            conn.recv()  # warmed up
        yield started
    finally:
        for worker, conn in started:
            with contextlib.suppress(OSError):
                conn.send(False)
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
            conn.close()


def _in_processes(work: Work, plain: list[tuple[BaseProcess, Connection]]) -> list[dict[str, Any]]:
    """The workload scored by the plain processes at once, in the workload's order."""
    for _, conn in plain:
        conn.send(True)
    shares = [conn.recv() for _, conn in plain]
    results: list[dict[str, Any]] = [{}] * len(work)
    for i, share in enumerate(shares):
        results[i :: len(plain)] = share
    return results


def _throughput(work: Work, rounds: int, local_ray: bool) -> Throughput:
    """Completions per second: one worker in this process, as many plain processes as Ray
    has CPUs, and all of the completions on Ray at once.

    Each runs the product path from the session's stroke dicts (pack the strokes, look up
    the parsed step and params, score, build the payload); the Ray round submits exactly as
    the session actor does. The three alternate for `rounds` rounds, so load from elsewhere
    on the machine weighs on all alike.
    """
    from scoring.tasks import pack_strokes, score_remote, score_step_json

    canvas_json = CANVAS.model_dump_json()
    params_json = ScoringParams().model_dump_json()
    # The JSON texts travel inline in each task: at ~1 KB, an object-store reference would
    # cost each task a fetch (measured slower than sending them along).
    steps = dict(work)
    for step_json, strokes in steps.items():  # parse each step once and sample its reference
        score_step_json(step_json, canvas_json, pack_strokes(strokes), params_json)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
    # Warm-up: start the workers and let each parse every step before timing.
    ray.get(
        [score_remote(s, canvas_json, k, params_json) for s, k in list(steps.items()) * 2 * cpus]
    )
    ray_processes = [psutil.Process(), *psutil.Process().children(recursive=True)]

    single_s, single_cpu_s, plain_s, plain_cpu_s, ray_s, ray_cpu_s = [], [], [], [], [], []
    with _plain_processes(work, cpus, canvas_json, params_json) as plain:
        plain_processes = [psutil.Process(), *(psutil.Process(p.pid) for p, _ in plain)]
        for _ in range(rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            single = [
                score_step_json(s, canvas_json, pack_strokes(k), params_json) for s, k in work
            ]
            single_s.append(time.perf_counter() - start)
            single_cpu_s.append(time.process_time() - start_cpu)

            start, start_cpu = time.perf_counter(), _cpu_s(plain_processes)
            in_processes = _in_processes(work, plain)
            plain_s.append(time.perf_counter() - start)
            plain_cpu_s.append(_cpu_s(plain_processes) - start_cpu)

            start, start_cpu = time.perf_counter(), _cpu_s(ray_processes)
            on_ray = ray.get([score_remote(s, canvas_json, k, params_json) for s, k in work])
            ray_s.append(time.perf_counter() - start)
            ray_cpu_s.append(_cpu_s(ray_processes) - start_cpu)
            if in_processes != single:
                raise RuntimeError("the plain processes and the single worker scored differently")
            if on_ray != single:
                raise RuntimeError("Ray and the single worker scored the workload differently")
    per_ms = 1000.0 / len(work)
    return Throughput(
        single_per_s=len(work) / statistics.median(single_s),
        processes_per_s=len(work) / statistics.median(plain_s),
        ray_per_s=len(work) / statistics.median(ray_s),
        ray_cpus=cpus,
        single_cpu_ms=per_ms * statistics.median(single_cpu_s),
        processes_cpu_ms=per_ms * statistics.median(plain_cpu_s),
        ray_cpu_ms=per_ms * statistics.median(ray_cpu_s) if local_ray else None,
    )


def _cpu_s(processes: list[psutil.Process]) -> float:
    """CPU seconds used so far by the processes still running."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print a table (or JSON with --json); 0 on success."""
    result = measure(args)
    if args.json:
        print_json(result)
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time the latency and the three ways through the workload; the figures as a dict."""
    load_start = os.getloadavg()[0]
    lessons = load_lessons_dir(PACKAGE_ROOT / "lessons")
    lesson = lessons.get("face-construction") or next(iter(lessons.values()))
    step = _bench_step(lesson)
    strokes = _strokes(step, args.strokes, seed=1)
    latency, cpu = _latency_ms(step, strokes, args.repeats)

    started_ray = not ray.is_initialized()
    if started_ray and args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    elif started_ray:  # as `inkstep serve` starts it: workers at normal priority
        start_local_ray("inkstep-bench-scoring")
    try:
        work = _workload(lesson, args.sessions, args.completions, args.strokes)
        throughput = _throughput(work, args.rounds, local_ray=started_ray and not args.address)
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
        "load_avg_1m_start": round(load_start, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "completions": args.completions,
        "sessions": args.sessions,
        "completion_steps": len(lesson.steps),
        "completion_strokes_mean": round(statistics.mean(len(k) for _, k in work), 1),
        "ray_cpus": throughput.ray_cpus,
        "single_worker_per_s": round(throughput.single_per_s, 1),
        # The same workload split over `ray_cpus` plain processes started together: what this
        # machine's cores give with no Ray at all (they contend: two busy cores each run
        # slower than one alone).
        "processes_per_s": round(throughput.processes_per_s, 1),
        "ray_tasks_per_s": round(throughput.ray_per_s, 1),
        "speedup": round(throughput.ray_per_s / throughput.single_per_s, 2),
        "ceiling_speedup": round(throughput.processes_per_s / throughput.single_per_s, 2),
        "ray_share_of_ceiling": round(throughput.ray_per_s / throughput.processes_per_s, 2),
        # CPU per completion each way: Ray's excess over the processes' is its own per-task
        # work (both have the cores' contention).
        "single_worker_cpu_ms_per_step": round(throughput.single_cpu_ms, 2),
        "processes_cpu_ms_per_step": round(throughput.processes_cpu_ms, 2),
        "ray_cpu_ms_per_step": _round_or_none(throughput.ray_cpu_ms),
    }
    return result
