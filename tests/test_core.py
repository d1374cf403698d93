"""SessionCore: ordering, idempotency, tombstones, roles, steps and exact state round trips."""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core import (
    ZSTD_MAGIC,
    Accepted,
    Duplicate,
    Refused,
    ScoreRequest,
    SessionCore,
    encode_mirror,
    pack_state,
)
from actors.runner import EncodedSnapshot
from actors.snapshot_frame import encode_snapshot
from actors.stroke_json import FinalStrokeTexts, KeptStrokeArray
from inkstep.lessons import Lesson, load_lesson_file

LESSON: Lesson = load_lesson_file(Path(__file__).parent.parent / "lessons" / "circles-101.json")
STYLE = {"color": "#112233", "width": 3.0, "tool": "pen"}


def stroke_op(op_id: str, stroke_id: str | None = None, final: bool = False,
              step: str = "s1", n: int = 3, x: float = 10.0) -> dict[str, Any]:  # fmt: skip
    points = [[x + i, 20.0 + i, 0.5, float(i)] for i in range(n)]
    payload = {"stroke_id": stroke_id or op_id, "layer": "ink", "points": points,
               "style": STYLE, "final": final}  # fmt: skip
    return {"type": "stroke_append", "client_op_id": op_id, "step_id": step, "payload": payload}


def target_op(kind: str, op_id: str, target: str) -> dict[str, Any]:
    return {"type": kind, "client_op_id": op_id, "payload": {"target": target}}


def submit(core: SessionCore, user: str, role: str, op: dict[str, Any]) -> Any:
    """Decide then apply, as the actor does."""
    decision = core.decide(user, role, op, ts_ms=1000 + core.last_seq)
    if isinstance(decision, Accepted):
        core.apply(decision.event)
    return decision


def new_core() -> SessionCore:
    return SessionCore("sess1", LESSON)


def small_block_core() -> SessionCore:
    """A core whose kept strokes array has blocks of two strokes, so a few ops fill some."""
    core = new_core()
    core.stroke_array = KeptStrokeArray(core.stroke_texts, strokes_per_block=2)
    return core


def test_seq_starts_at_one_and_increases_by_one() -> None:
    core = new_core()
    seqs = [submit(core, "ann", "student", stroke_op(f"op{i}")).event["seq"] for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]


def test_duplicate_op_answers_the_original_seq_and_changes_nothing() -> None:
    core = new_core()
    first = submit(core, "ann", "student", stroke_op("a1"))
    before = core.state_dict()
    again = submit(core, "ann", "student", stroke_op("a1"))
    assert again == Duplicate("a1", first.event["seq"])
    assert core.state_dict() == before


def test_same_op_id_from_two_users_are_two_ops() -> None:
    core = new_core()
    submit(core, "ann", "student", stroke_op("x1"))
    decision = submit(core, "bob", "student", stroke_op("x1", stroke_id="y1"))
    assert isinstance(decision, Refused)  # a new stroke's id must be its first op id
    assert isinstance(submit(core, "bob", "student", stroke_op("y1")), Accepted)


def test_batches_join_one_stroke_until_final() -> None:
    core = new_core()
    submit(core, "ann", "student", stroke_op("s", n=2))
    submit(core, "ann", "student", stroke_op("b2", stroke_id="s", n=3, final=True))
    assert len(core.strokes["s"]["points"]) == 5 and core.strokes["s"]["final"]
    late = submit(core, "ann", "student", stroke_op("b3", stroke_id="s"))
    assert isinstance(late, Refused) and late.code == "invalid"


def test_another_users_stroke_cannot_be_extended() -> None:
    core = new_core()
    submit(core, "ann", "student", stroke_op("s"))
    decision = submit(core, "bob", "student", stroke_op("b", stroke_id="s"))
    assert isinstance(decision, Refused) and decision.code == "forbidden"


def test_viewer_changes_nothing() -> None:
    core = new_core()
    decision = submit(core, "vic", "viewer", stroke_op("v1"))
    assert isinstance(decision, Refused) and decision.code == "forbidden"
    assert core.last_seq == 0 and not core.strokes


def test_undo_redo_rules_and_idempotency() -> None:
    core = new_core()
    submit(core, "ann", "student", stroke_op("s1"))
    refused = submit(core, "bob", "student", target_op("undo", "u0", "s1"))
    assert isinstance(refused, Refused) and refused.code == "forbidden"
    assert isinstance(submit(core, "ann", "student", target_op("undo", "u1", "s1")), Accepted)
    assert isinstance(submit(core, "ann", "student", target_op("undo", "u2", "s1")), Accepted)
    assert core.strokes["s1"]["deleted"] is True
    assert isinstance(submit(core, "tea", "teacher", target_op("redo", "r1", "s1")), Accepted)
    assert core.strokes["s1"]["deleted"] is False
    unknown = submit(core, "ann", "student", target_op("undo", "u3", "nope"))
    assert isinstance(unknown, Refused) and unknown.code == "invalid"


def test_layer_set_last_writer_wins_per_prop_and_ownership() -> None:
    core = new_core()
    op = {"type": "layer_set", "client_op_id": "l1",
          "payload": {"layer": "sketch", "props": {"opacity": 0.5, "visible": True}}}  # fmt: skip
    submit(core, "ann", "student", op)
    op2 = {"type": "layer_set", "client_op_id": "l2",
           "payload": {"layer": "sketch", "props": {"opacity": 0.2}}}  # fmt: skip
    refused = submit(core, "bob", "student", op2)
    assert isinstance(refused, Refused) and refused.code == "forbidden"
    submit(core, "tea", "teacher", op2)
    assert core.layers["sketch"] == {"opacity": 0.2, "visible": True}


def test_step_change_is_for_teachers_and_checked_against_the_lesson() -> None:
    core = new_core()
    change = {"type": "step_change", "client_op_id": "c1", "payload": {"to_step": "s2"}}
    assert isinstance(submit(core, "ann", "student", change), Refused)
    bad = {"type": "step_change", "client_op_id": "c2", "payload": {"to_step": "s9"}}
    assert submit(core, "tea", "teacher", bad).code == "invalid"
    decision = submit(core, "tea", "teacher", change)
    assert decision.event["payload"] == {"from_step": "s1", "to_step": "s2", "reason": "teacher"}
    assert core.step_id == "s2"
    old_step = submit(core, "ann", "student", stroke_op("late", step="s1"))
    assert isinstance(old_step, Refused)


def test_points_far_outside_the_canvas_are_refused() -> None:
    core = new_core()
    decision = submit(core, "ann", "student", stroke_op("far", x=1e6))
    assert isinstance(decision, Refused) and decision.code == "invalid"
    assert core.last_seq == 0


def test_the_canvas_bounds_are_one_canvas_size_beyond_each_edge() -> None:
    """As the protocol states: -width <= x <= 2 width, -height <= y <= 2 height."""
    width, height = LESSON.canvas.width, LESSON.canvas.height
    core = new_core()
    for i, (x, y) in enumerate(
        [(-width, 5.0), (2 * width, 5.0), (5.0, -height), (5.0, 2 * height)]
    ):
        op = stroke_op(f"edge{i}", final=True)
        op["payload"]["points"] = [[x, y, 0.5, 0.0]]
        assert isinstance(submit(core, "ann", "student", op), Accepted), (x, y)
    for i, (x, y) in enumerate([(-width - 1, 5.0), (2 * width + 1, 5.0), (5.0, -height - 1),
                                (5.0, 2 * height + 1)]):  # fmt: skip
        op = stroke_op(f"out{i}", final=True)
        op["payload"]["points"] = [[x, y, 0.5, 0.0]]
        refused = submit(core, "ann", "student", op)
        assert isinstance(refused, Refused) and refused.code == "invalid", (x, y)
    assert core.last_seq == 4


def test_step_complete_scores_then_advances_when_passed() -> None:
    core = new_core()
    submit(core, "ann", "student", stroke_op("s1", final=True))
    complete = {"type": "step_complete", "client_op_id": "done1", "step_id": "s1"}
    request = core.decide("ann", "student", complete, 5)
    assert isinstance(request, ScoreRequest) and [s["stroke_id"] for s in request.strokes] == ["s1"]
    score = {"accuracy": 91.0, "quality": 80.0, "passed": True, "details": {}}
    events = core.decide_score(request, score, 6)
    assert [e["type"] for e in events] == ["score_update", "step_change"]
    assert [e["seq"] for e in events] == [2, 3]
    for event in events:
        core.apply(event)
    assert core.step_id == "s2" and core.scores[0]["accuracy"] == 91.0
    assert core.decide("ann", "student", {"type": "step_complete", "client_op_id": "done1",
                                          "step_id": "s2"}, 7) == Duplicate("done1", 2)  # fmt: skip


def test_participants_join_and_leave_once_per_user() -> None:
    core = new_core()
    joined = core.decide_join("ann", "student", "c1", 1)
    assert joined is not None
    core.apply(joined)
    assert core.has_participants()
    assert core.decide_join("ann", "student", "c2", 2) is None
    assert core.decide_leave("ann", "c1", 3) is None
    left = core.decide_leave("ann", "c2", 4)
    assert left is not None and left["payload"]["state"] == "left"
    core.apply(left)
    assert core.participant_list() == []
    assert not core.has_participants()


# ---- properties -------------------------------------------------------------------

USERS = [("ann", "student"), ("bob", "student"), ("tea", "teacher")]


@st.composite
def op_sequences(draw: st.DrawFn) -> list[tuple[str, str, dict[str, Any]]]:
    ops: list[tuple[str, str, dict[str, Any]]] = []
    strokes: list[str] = []
    for i in range(draw(st.integers(1, 25))):
        user, role = draw(st.sampled_from(USERS))
        kind = draw(st.sampled_from(["stroke", "stroke", "undo", "redo", "extend"]))
        op_id = f"{user}-{i}"
        if kind == "stroke" or not strokes:
            ops.append((user, role, stroke_op(op_id, final=draw(st.booleans()))))
            strokes.append(op_id)
        elif kind == "extend":
            target, final = draw(st.sampled_from(strokes)), draw(st.booleans())
            ops.append((user, role, stroke_op(op_id, target, final, x=10.0 * i)))
        else:
            ops.append((user, role, target_op(kind, op_id, draw(st.sampled_from(strokes)))))
    return ops


def run_ops(ops: list[tuple[str, str, dict[str, Any]]]) -> SessionCore:
    core = new_core()
    for user, role, op in ops:
        submit(core, user, role, op)
    return core


@settings(max_examples=60, deadline=None)
@given(op_sequences(), st.data())
def test_duplicates_and_retries_give_the_deduplicated_state(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    noisy: list[tuple[str, str, dict[str, Any]]] = []
    for i, item in enumerate(ops):
        noisy.append(item)
        # a retry re-sends an earlier op (same client_op_id) at any later point
        for _ in range(data.draw(st.integers(0, 2))):
            noisy.append(ops[data.draw(st.integers(0, i))])
    assert run_ops(noisy).state_dict() == run_ops(ops).state_dict()


@settings(max_examples=40, deadline=None)
@given(op_sequences(), st.integers(1, 6))
def test_repeated_undo_redo_converges(
    ops: list[tuple[str, str, dict[str, Any]]], repeats: int
) -> None:
    core = run_ops(ops)
    target = next(iter(core.strokes))
    author = core.strokes[target]["author"]
    for i in range(repeats):
        submit(core, author, "student", target_op("undo", f"ux{i}", target))
    assert core.strokes[target]["deleted"] is True
    for i in range(repeats):
        submit(core, "tea", "teacher", target_op("redo", f"rx{i}", target))
    assert core.strokes[target]["deleted"] is False


def replay(events: list[dict[str, Any]], start: SessionCore | None = None) -> SessionCore:
    core = start or new_core()
    for event in events:
        core.apply(event)
    return core


@settings(max_examples=40, deadline=None)
@given(op_sequences(), st.data())
def test_replay_from_any_point_gives_the_same_state_and_snapshot(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    events: list[dict[str, Any]] = []
    live = new_core()
    for user, role, op in ops:
        decision = live.decide(user, role, op, ts_ms=7)
        if isinstance(decision, Accepted):
            live.apply(decision.event)
            events.append(decision.event)
    cut = data.draw(st.integers(0, len(events)))
    checkpoint = SessionCore.import_state(replay(events[:cut]).export_state())
    rebuilt = replay(events[cut:], checkpoint)
    assert rebuilt.state_dict() == live.state_dict()
    assert rebuilt.snapshot() == live.snapshot()
    rebuilt_doc, live_doc = rebuilt.synced_doc(), live.synced_doc()
    assert rebuilt_doc.encode() != b"" and rebuilt_doc.strokes.to_py() == live_doc.strokes.to_py()
    assert live_doc.meta.to_py() == {"step_id": live.step_id, "last_seq": live.last_seq}


@settings(max_examples=30, deadline=None)
@given(op_sequences())
def test_export_import_round_trip_is_exact(ops: list[tuple[str, str, dict[str, Any]]]) -> None:
    core = run_ops(ops)
    copy = SessionCore.import_state(core.export_state())
    assert copy.state_dict() == core.state_dict()
    assert copy.export_state()[:8] == core.export_state()[:8]
    assert copy.synced_doc().strokes.to_py() == core.synced_doc().strokes.to_py()
    assert copy.synced_doc().layers.to_py() == core.synced_doc().layers.to_py()


@settings(max_examples=20, deadline=None)
@given(op_sequences())
def test_a_checkpoint_from_before_zstd_imports_the_same(
    ops: list[tuple[str, str, dict[str, Any]]],
) -> None:
    core = run_ops(ops)
    mirror, backlog = core.export_parts()
    packed = zlib.compress(encode_mirror(mirror), 1)  # how checkpoints were packed before
    older = len(packed).to_bytes(8, "big") + packed + core.doc_update_with(backlog)
    assert not packed.startswith(ZSTD_MAGIC)
    assert SessionCore.import_state(older).state_dict() == core.state_dict()
    newer = core.export_state()
    assert newer[8:12] == ZSTD_MAGIC
    assert SessionCore.import_state(newer).state_dict() == core.state_dict()


@settings(max_examples=40, deadline=None)
@given(op_sequences(), st.data())
def test_the_doc_synced_in_any_chunks_holds_what_the_mirror_holds(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    core = new_core()
    for user, role, op in ops:
        decision = core.decide(user, role, op, ts_ms=7)
        if isinstance(decision, Accepted):
            core.apply(decision.event)
        if data.draw(st.booleans()):  # bring the Doc up to date here, mid-stroke or not
            core.synced_doc()
    doc = core.synced_doc()
    wanted = {
        s["stroke_id"]: {"author": s["author"], "step_id": s["step_id"], "layer": s["layer"],
                         "style": s["style"], "points": s["points"], "final": s["final"],
                         "deleted": s["deleted"]}
        for s in core.snapshot()["payload"]["strokes"]
    }  # fmt: skip
    assert doc.strokes.to_py() == wanted
    assert doc.layers.to_py() == core.layers
    assert doc.meta.to_py() == {"step_id": core.step_id, "last_seq": core.last_seq}


@settings(max_examples=60, deadline=None)
@given(op_sequences(), st.data())
def test_snapshot_frames_with_kept_stroke_texts_equal_the_snapshot(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    core = small_block_core()
    for user, role, op in ops:
        decision = core.decide(user, role, op, ts_ms=7)
        if isinstance(decision, Accepted):
            core.apply(decision.event)
        if data.draw(st.booleans()):  # a late joiner arrives here
            frame = encode_snapshot(core.snapshot(), core.strokes_json())
            assert orjson.loads(frame) == core.snapshot()
    assert orjson.loads(encode_snapshot(core.snapshot(), core.strokes_json())) == core.snapshot()
    # The same strokes read back from a checkpoint, their blocks not joined yet.
    restored = KeptStrokeArray(FinalStrokeTexts(), strokes_per_block=2)
    restored.restore(orjson.loads(orjson.dumps(list(core.strokes.values()))))
    assert b"".join(restored.parts()) == orjson.dumps(list(core.strokes.values()))


def test_a_snapshot_joins_again_only_the_block_a_stroke_changed_in() -> None:
    core = small_block_core()
    for op_id in ("a1", "a2", "a3"):
        submit(core, "ann", "student", stroke_op(op_id, final=True))
    first = core.strokes_json()
    assert first[1] is core.strokes_json()[1]  # the full block, joined once
    submit(core, "ann", "student", stroke_op("a4"))  # block 2 fills, one stroke drawing
    assert core.strokes_json()[1] is first[1]
    submit(core, "ann", "student", target_op("undo", "u1", "a2"))
    after_undo = core.strokes_json()
    assert after_undo[1] is not first[1]
    assert after_undo[1] is core.strokes_json()[1]  # joined again once, then kept
    assert orjson.loads(b"".join(after_undo)) == core.snapshot()["payload"]["strokes"]
    assert orjson.loads(b"".join(after_undo))[1]["deleted"] is True
    submit(core, "ann", "student", stroke_op("a4b", stroke_id="a4", final=True))
    done = core.strokes_json()
    assert done[3] is core.strokes_json()[3]  # its last stroke final: the block is kept
    assert orjson.loads(b"".join(done)) == core.snapshot()["payload"]["strokes"]


@settings(max_examples=40, deadline=None)
@given(op_sequences(), st.data())
def test_kept_stroke_texts_are_the_strokes_as_they_are_now(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    """Whatever comes after a stroke's text was kept (undo, redo, other strokes), the text
    spliced into snapshots and checkpoints is the stroke's JSON at that moment."""
    core = new_core()
    for user, role, op in ops:
        submit(core, user, role, op)
        if data.draw(st.booleans()):
            for stroke in core.strokes.values():
                assert core.stroke_texts.text(stroke) == orjson.dumps(stroke)
    mirror, _ = core.export_parts()
    plain = {**mirror, "strokes": list(core.strokes.values())}
    assert encode_mirror(mirror) == encode_mirror(plain)
    kept = [s for s in core.strokes.values() if core.stroke_texts.kept(s) is not None]
    assert all(s["final"] for s in kept)


@settings(max_examples=40, deadline=None)
@given(op_sequences(), st.data())
def test_a_checkpoint_holds_the_state_it_was_taken_at_whatever_comes_after(
    ops: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    source, events = new_core(), []
    for user, role, op in ops:
        if isinstance(decision := submit(source, user, role, op), Accepted):
            events.append(decision.event)
    cut = data.draw(st.integers(0, len(events)))
    live = replay(events[:cut])
    mirror, backlog = live.export_parts()  # as a checkpoint takes it, under the session lock
    replay(events[cut:], live)  # points appended, undos, layer props: all after the copy
    checkpoint = SessionCore.import_state(pack_state(mirror, live.doc_update_with(backlog)))
    assert checkpoint.state_dict() == replay(events[:cut]).state_dict()


def test_a_snapshot_frame_crosses_as_an_array_and_reads_back_as_its_text() -> None:
    core = new_core()
    submit(core, "zoë", "student", stroke_op("a1", final=True))
    frame = encode_snapshot(core.snapshot(), core.strokes_json())
    sent = EncodedSnapshot.of(core.last_seq, core.step_id, frame)
    received = pickle.loads(pickle.dumps(sent, protocol=5))  # as Ray moves it
    assert received.text() == frame.decode()
    assert orjson.loads(received.text()) == core.snapshot()
