"""Checkpoint: what one session checkpoint costs, and how long it holds up the session's ops.

In one process, as a session actor would: a SessionCore takes `--events` stroke batches of
`--points` points (the Doc kept up to date 20 events at a time, as the actor does), then the
checkpoint's steps run in the actor's order: copy the mirror (on the op thread, under the
session lock), bring the Doc up to date and encode it, pack the state, write it and archive
`--segment-events` events to a blob folder (on the checkpoint thread). Beside them a thread
stands in for the op thread: it wakes every 0.2 ms, and the longest it waited for the GIL
during a step is how long that step could have held up an op of the session (the copy of the
mirror holds them for all of its time).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from actors.core import Accepted, SessionCore, pack_state
from actors.runner import DOC_SYNC_EVENTS
from actors.session_actor import actor_interpreter_policy
from inkstep.bench.harness import LESSON_ID, print_json, stroke_frame
from inkstep.lessons import load_lessons_dir
from inkstep.settings import PACKAGE_ROOT
from inkstep.store import archive
from inkstep.store.blob import FileBlobStore

STROKE_BATCHES = 50  # batches per stroke, as a 1 s stroke at 50 Hz
PROBE_PERIOD_S = 0.0002


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `inkstep bench checkpoint`."""
    parser.add_argument("--events", type=int, default=4000, help="stroke batches in the session")
    parser.add_argument("--points", type=int, default=20, help="points per batch")
    parser.add_argument("--segment-events", type=int, default=2000, help="events archived")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


class OpThreadStandIn:
    """A thread that sleeps 0.2 ms at a time and records how late each wake-up was."""

    def __init__(self) -> None:
        self.wakes: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name="op-thread-stand-in")

    def __enter__(self) -> OpThreadStandIn:
        self._thread.start()
        self._running.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            time.sleep(PROBE_PERIOD_S)
            self.wakes.append((started, time.perf_counter() - started - PROBE_PERIOD_S))
            self._running.set()

    def longest_wait_ms(self, start: float, end: float) -> float:
        late = [lateness for at, lateness in self.wakes if start <= at < end]
        return 1000 * max(late, default=end - start)


def drawn_session(events: int, points: int) -> tuple[SessionCore, list[str]]:
    """A session with `events` stroke batches applied, and the log lines they made."""
    lesson = load_lessons_dir(PACKAGE_ROOT / "lessons")[LESSON_ID]
    core = SessionCore("bench-checkpoint", lesson)
    joined = core.decide_join("artist", "student", "conn-1", 0)
    assert joined is not None  # a new session: the first join is news
    core.apply(joined)
    log: list[str] = []
    for n in range(events):
        stroke, batch = divmod(n, STROKE_BATCHES)
        angle = [(batch * points + i) / 100 for i in range(points)]
        points_json = orjson.dumps(
            [[400 + 100 * math.cos(a), 300 + 100 * math.sin(a), 0.5, int(a * 500)] for a in angle]
        ).decode()
        frame = stroke_frame(f"op-{n}", f"op-{stroke * STROKE_BATCHES}", points_json,
                             batch == STROKE_BATCHES - 1)  # fmt: skip
        op = orjson.loads(frame)
        decision = core.decide("artist", "student", op, 0)
        if not isinstance(decision, Accepted):
            raise RuntimeError(f"the bench's own op was refused: {decision}")
        core.apply(decision.event)
        log.append(orjson.dumps(decision.event).decode())
        if core.doc_backlog_size() >= DOC_SYNC_EVENTS:
            core.apply_doc_backlog(core.take_doc_backlog())
    return core, log


def check_written(blobs: FileBlobStore, core: SessionCore, segment_events: int) -> None:
    """What the bench wrote restores the session and holds the archived events."""
    stored = archive.latest_checkpoint(blobs, core.session_id)
    if stored is None or SessionCore.import_state(stored[1]).snapshot() != core.snapshot():
        raise RuntimeError("the checkpoint does not restore the session it was taken of")
    archived = list(archive.read_segments(blobs, core.session_id))
    if len(archived) != min(segment_events, core.last_seq):
        raise RuntimeError(f"the segment holds {len(archived)} events, not {segment_events}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    # The actor's GIL switch interval and collector; a blob folder gone when done.
    with actor_interpreter_policy(), tempfile.TemporaryDirectory(prefix="inkstep-bench-") as d:
        return _measure(args, FileBlobStore(Path(d)))


def _measure(args: argparse.Namespace, blobs: FileBlobStore) -> dict[str, Any]:
    core, log = drawn_session(args.events, args.points)
    steps: list[dict[str, Any]] = []
    parts: dict[str, Any] = {}

    def step(name: str, work: Callable[[], Any], holds_ops: bool = False) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = work()
        end = time.perf_counter()
        steps.append({"step": name, "wall_ms": round(1000 * (end - wall), 1),
                      "cpu_ms": round(1000 * (time.thread_time() - cpu), 1),
                      "op_wait_ms": round(1000 * (end - wall) if holds_ops
                                          else probe.longest_wait_ms(wall, end), 1)})  # fmt: skip
        return result

    # The actor archives what it read from the log, whose entry ids give the seqs for free.
    numbered_tail = [(orjson.loads(e)["seq"], e) for e in log[-args.segment_events :]]
    with OpThreadStandIn() as probe:
        parts["mirror"], parts["backlog"] = step(
            "copy the mirror (op thread)", core.export_parts, holds_ops=True
        )
        update = step("Doc: catch up, encode", lambda: core.doc_update_with(parts["backlog"]))
        state = step("pack the state", lambda: pack_state(parts["mirror"], update))
        step(
            "write the checkpoint",
            lambda: archive.write_checkpoint(blobs, core.session_id, core.last_seq, state),
        )
        step(
            "archive a segment",
            lambda: archive.write_numbered_segment(blobs, core.session_id, numbered_tail),
        )
    check_written(blobs, core, args.segment_events)
    return {"events": args.events, "points": args.points, "state_bytes": len(state),
            "steps": steps, "total_cpu_ms": round(sum(s["cpu_ms"] for s in steps), 1),
            "longest_op_wait_ms": max(s["op_wait_ms"] for s in steps)}  # fmt: skip


def print_result(result: dict[str, Any]) -> None:
    print(f"checkpoint of a session of {result['events']} events x {result['points']} points "
          f"({result['state_bytes'] / 1e6:.2f} MB)")  # fmt: skip
    print(f"{'step':30s} {'wall ms':>8s} {'CPU ms':>8s} {'longest op wait ms':>19s}")
    for row in result["steps"]:
        print(f"{row['step']:30s} {row['wall_ms']:8.1f} {row['cpu_ms']:8.1f} "
              f"{row['op_wait_ms']:19.1f}")  # fmt: skip
    print(f"{'total':30s} {'':8s} {result['total_cpu_ms']:8.1f} "
          f"{result['longest_op_wait_ms']:19.1f}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    result = measure(args)
    print_json(result) if args.json else print_result(result)
    return 0
