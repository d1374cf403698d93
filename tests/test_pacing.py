"""Paced checkpoint work: it rests between pieces, and what it writes is what an unpaced
checkpoint writes."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import orjson
import pytest

from actors.core import STROKES_PER_PIECE, Accepted, SessionCore, pack_state
from actors.pacing import Pacer
from inkstep.store.archive import EVENTS_PER_PIECE, read_segments, write_segment
from inkstep.store.blob import FileBlobStore
from tests.test_core import new_core, stroke_op, submit


def burn_cpu(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_a_paced_job_takes_at_most_its_share_of_a_core() -> None:
    pacer = Pacer(0.25)
    started = time.monotonic()
    cpu_at_start = time.thread_time()
    for _ in range(10):
        burn_cpu(0.01)
        pacer.rest()
    used = time.thread_time() - cpu_at_start
    elapsed = time.monotonic() - started
    assert pacer.rested_s > 0
    assert used <= 0.25 * elapsed * 1.05  # the last rest leaves the job within its share


def test_a_job_with_the_whole_core_never_rests() -> None:
    pacer = Pacer(1.0)
    for _ in range(5):
        burn_cpu(0.005)
        pacer.rest()
    assert pacer.rested_s == 0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_one_core_is_refused(share: float) -> None:
    with pytest.raises(ValueError):
        Pacer(share)


def drawn_core(strokes: int) -> SessionCore:
    core = new_core()
    for index in range(strokes):
        assert isinstance(submit(core, "ann", "student", stroke_op(f"op{index}", final=True)),
                          Accepted)  # fmt: skip
    return core


def test_a_checkpoint_packed_in_pieces_imports_the_same_state() -> None:
    core = drawn_core(2 * STROKES_PER_PIECE + 7)
    mirror, backlog = core.export_parts()
    rests: list[int] = []
    packed = pack_state(mirror, core.doc_update_with(backlog), lambda: rests.append(1))
    assert len(rests) >= 3  # a rest after each piece of strokes
    restored = SessionCore.import_state(packed)
    assert restored.state_dict() == core.state_dict()
    assert restored.synced_doc().strokes.to_py() == core.synced_doc().strokes.to_py()
    assert packed == pack_state(mirror, core.doc_update_with([]))  # resting changes no byte


def test_a_segment_compressed_in_pieces_reads_back_whole(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    events = [orjson.dumps({"seq": seq, "payload": "x" * (seq % 7)}).decode()
              for seq in range(1, 2 * EVENTS_PER_PIECE + 12)]  # fmt: skip
    rests: list[int] = []
    key = write_segment(store, "s1", events, lambda: rests.append(1))
    assert len(rests) >= 6  # after each piece read, and each piece compressed
    assert list(read_segments(store, "s1")) == events
    raw = store.get(key)
    assert raw is not None
    assert gzip.decompress(raw).decode().splitlines() == events
    write_segment(store, "s1", events)
    assert store.get(key) == raw  # a redo of the same range writes the same bytes
