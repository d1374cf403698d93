"""The session loop spreads its background work: the Doc follows the mirror in small chunks,
and each session checkpoints at a share of the interval of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from actors.core import SessionCore
from actors.runner import DOC_SYNC_EVENTS, SessionRunner, checkpoint_cadence
from inkstep.bench.harness import stroke_frame
from inkstep.lessons import load_lesson_file
from inkstep.settings import Settings
from inkstep.store import archive
from inkstep.store.blob import BlobStore, open_blob_store
from tests.helpers import unique

LESSON = load_lesson_file(Path(__file__).parent.parent / "lessons" / "circles-101.json")
POINTS = [[100.0 + i, 200.0, 0.5, i * 5] for i in range(20)]


async def no_score(*_: Any) -> dict[str, Any]:
    return {}


def open_runner(session_id: str, redis_url: str, tmp_path: Path,
                **settings: Any) -> tuple[SessionRunner, BlobStore]:  # fmt: skip
    blobs = open_blob_store(f"file://{tmp_path}")
    runner = SessionRunner(session_id, LESSON,
                           Settings(redis_url=redis_url, data_dir=tmp_path, **settings),
                           blobs, no_score, lambda: None)  # fmt: skip
    joined = runner.core.decide_join("ann", "student", "gw-c1", 0)
    assert joined is not None
    runner.core.apply(joined)
    return runner, blobs


@pytest.fixture
def runner(redis_url: str, tmp_path: Path) -> Iterator[SessionRunner]:
    opened, _ = open_runner(unique("runner"), redis_url, tmp_path)
    yield opened
    opened._doc_thread.shutdown(wait=True)
    opened.redis.close()


def draw(runner: SessionRunner, batches: int, first: int = 0) -> None:
    """`batches` stroke batches of one stroke from ann, each its own inbox entry."""
    entries = []
    for i in range(first, first + batches):
        op = orjson.loads(stroke_frame(f"op{i}", "op0", orjson.dumps(POINTS).decode(), False))
        message = {"kind": "op", "user_id": "ann", "role": "student", "op": op,
                   "connection": "gw-c1", "gateway": "gw"}  # fmt: skip
        entries.append((f"{i + 1}-0".encode(), {b"m": orjson.dumps(message)}))
    with runner.lock:
        runner.handle(entries)
    runner.link.reset()  # the inbox read the batch started: these entries are not in Redis


def test_the_doc_takes_the_events_a_chunk_at_a_time_without_a_checkpoint(
    runner: SessionRunner, tmp_path: Path
) -> None:
    backlog_at_start = runner.core.doc_backlog_size()  # the join
    draw(runner, DOC_SYNC_EVENTS - 1 - backlog_at_start)
    assert runner.core.doc_backlog_size() == DOC_SYNC_EVENTS - 1
    assert runner._doc_syncing is None

    draw(runner, 1, first=DOC_SYNC_EVENTS - 1 - backlog_at_start)
    assert runner._doc_syncing is not None
    runner._doc_syncing.result(timeout=10)
    assert runner.core.doc_backlog_size() == 0
    points = runner.core.doc.strokes["op0"]["points"]
    assert len(points) == (DOC_SYNC_EVENTS - backlog_at_start) * len(POINTS)
    assert runner.checkpoint_seq == 0
    # A checkpoint after it holds every point, in the Doc as in the mirror.
    draw(runner, 3, first=DOC_SYNC_EVENTS - backlog_at_start)
    assert runner.checkpoint_now() == runner.core.last_seq
    found = archive.latest_checkpoint(open_blob_store(f"file://{tmp_path}"), runner.session_id)
    assert found is not None
    restored = SessionCore.import_state(found[1])
    assert restored.strokes == runner.core.strokes
    drawn = (DOC_SYNC_EVENTS + 3 - backlog_at_start) * len(POINTS)
    assert len(restored.doc.strokes["op0"]["points"]) == drawn


def test_each_session_checkpoints_at_a_fixed_share_of_the_interval() -> None:
    shares = [checkpoint_cadence(f"session-{i}") for i in range(200)]
    assert all(0.75 <= share <= 1.0 for share in shares)
    assert max(shares) - min(shares) > 0.2  # spread, so sessions started together drift apart
    assert checkpoint_cadence("session-7") == shares[7]


def test_a_session_checkpoints_once_its_own_share_of_events_is_in(
    redis_url: str, tmp_path: Path
) -> None:
    # A session whose share makes its interval clearly shorter than the configured one.
    session_id = next(s for s in (unique("cadence") for _ in range(100))
                      if round(40 * checkpoint_cadence(s)) <= 36)  # fmt: skip
    runner, blobs = open_runner(session_id, redis_url, tmp_path, checkpoint_every_events=40)
    try:
        every = runner.checkpoint_every_events
        assert every == round(40 * checkpoint_cadence(session_id))
        draw(runner, every - 2)  # with the join: one event short
        runner._maybe_checkpoint()
        assert runner._checkpointing is None
        draw(runner, 1, first=every - 2)
        runner._maybe_checkpoint()
        assert runner._checkpointing is not None
        runner._checkpointing.result(timeout=10)
        assert archive.checkpoint_seqs(blobs, session_id) == [every]
    finally:
        runner._doc_thread.shutdown(wait=True)
        runner.redis.close()


def test_a_rebuild_waits_for_the_checkpoint_that_trims_the_log(
    redis_url: str, tmp_path: Path
) -> None:
    runner, _ = open_runner(unique("runner"), redis_url, tmp_path, stream_tail_events=10)
    try:
        draw(runner, 3000)
        state = runner.core.state_dict()
        with runner.lock:  # as the loop starts one: paced, so it runs for a while
            runner._checkpointing = runner.checkpoint(paced=True)
        runner.try_rebuild()
        assert runner._checkpointing.done()
        assert runner.core.state_dict() == state
    finally:
        runner._doc_thread.shutdown(wait=True)
        runner.redis.close()
