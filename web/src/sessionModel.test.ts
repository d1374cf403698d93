import { describe, expect, it } from "vitest";
import { SessionModel } from "./sessionModel";
import { event, pts, redo, snapshot, stroke, STYLE, undo } from "./test/events";

function model(userId = "alice"): SessionModel {
  const m = new SessionModel(userId);
  m.applySnapshot(snapshot(0));
  return m;
}

describe("ordering", () => {
  it("applies events in seq order and counts strokes", () => {
    const m = model();
    expect(m.applyEvent(stroke(1, "a")).result).toBe("applied");
    expect(m.applyEvent(stroke(2, "b")).result).toBe("applied");
    expect(m.lastSeq).toBe(2);
    expect(m.order).toEqual(["a", "b"]);
    expect(m.strokeCount()).toBe(2);
  });

  it("ignores an event it already applied", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { final: false }));
    const again = m.applyEvent(stroke(1, "a", { final: false }));
    expect(again.result).toBe("duplicate");
    expect(m.strokes.get("a")!.points).toHaveLength(3);
  });

  it("reports a gap and applies nothing past it", () => {
    const m = model();
    m.applyEvent(stroke(1, "a"));
    const out = m.applyEvent(stroke(3, "c"));
    expect(out.result).toBe("gap");
    expect(m.lastSeq).toBe(1);
    expect(m.strokes.has("c")).toBe(false);
  });

  it("appends later batches of a stroke and reports only the new points", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { points: pts(3), final: false }));
    const out = m.applyEvent(stroke(2, "a", { points: pts(2, 50), final: true }));
    expect(out.changes).toContainEqual({ kind: "append", strokeId: "a", from: 3 });
    expect(m.strokes.get("a")!.points).toHaveLength(5);
    expect(m.strokes.get("a")!.final).toBe(true);
    expect(m.strokeCount()).toBe(1);
  });

  it("skips unknown event types but advances its seq", () => {
    const m = model();
    expect(m.applyEvent(event(1, "something_new", { x: 1 })).result).toBe("applied");
    expect(m.lastSeq).toBe(1);
    expect(m.applyEvent(stroke(2, "a")).result).toBe("applied");
  });

  it("asks for a snapshot until it has one", () => {
    const m = new SessionModel("alice");
    expect(m.resumeSeq()).toBeNull();
    m.applySnapshot(snapshot(41));
    expect(m.resumeSeq()).toBe(41);
  });
});

describe("snapshot", () => {
  it("replaces strokes, keeps tombstoned ones and sets lastSeq and step", () => {
    const m = model();
    m.applyEvent(stroke(1, "old"));
    const changes = m.applySnapshot(
      snapshot(10, [{ stroke_id: "x" }, { stroke_id: "y", deleted: true }, { stroke_id: "z", author: "alice" }], "s2"),
    );
    expect(changes).toContainEqual({ kind: "reset" });
    expect(m.order).toEqual(["x", "y", "z"]);
    expect(m.strokes.has("old")).toBe(false);
    expect(m.strokeCount()).toBe(2);
    expect(m.lastSeq).toBe(10);
    expect(m.stepId).toBe("s2");
    expect(m.participants.get("alice")?.role).toBe("student");
    expect(m.applyEvent(stroke(11, "w")).result).toBe("applied");
  });

  it("lets a redo after the snapshot restore a tombstoned stroke", () => {
    const m = model();
    m.applySnapshot(snapshot(5, [{ stroke_id: "y", deleted: true }]));
    m.applyEvent(redo(6, "y"));
    expect(m.strokes.get("y")!.deleted).toBe(false);
    expect(m.strokeCount()).toBe(1);
  });

  it("reconciles pending strokes that the snapshot already holds", () => {
    const m = model();
    m.beginPending("mine", "s1", "ink", STYLE, pts(2));
    m.addPendingPoints("mine", pts(2, 30), true);
    m.applySnapshot(snapshot(3, [{ stroke_id: "mine", author: "alice", points: pts(4), final: true }]));
    expect(m.pending.size).toBe(0);
  });
});

describe("pending strokes", () => {
  it("keeps an own stroke pending until its final batch is confirmed", () => {
    const m = model();
    m.beginPending("p1", "s1", "ink", STYLE, pts(1));
    m.addPendingPoints("p1", pts(4, 20));
    m.applyEvent(stroke(1, "p1", { author: "alice", points: pts(1), final: false, opId: "p1" }));
    expect(m.pending.get("p1")!.confirmed).toBe(1);
    m.addPendingPoints("p1", pts(1, 90), true);
    m.applyEvent(stroke(2, "p1", { author: "alice", points: pts(5, 20), final: true }));
    expect(m.pending.has("p1")).toBe(false);
    expect(m.strokes.get("p1")!.points).toHaveLength(6);
  });

  it("does not confirm a pending stroke with someone else's event of the same id", () => {
    const m = model();
    m.beginPending("same", "s1", "ink", STYLE, pts(1));
    m.applyEvent(stroke(1, "same", { author: "bob", final: true }));
    expect(m.pending.has("same")).toBe(true);
  });

  it("drops a refused pending stroke", () => {
    const m = model();
    m.beginPending("p1", "s1", "ink", STYLE, pts(1));
    expect(m.dropPending("p1")).toContainEqual({ kind: "pending" });
    expect(m.pending.size).toBe(0);
  });
});

describe("undo and redo", () => {
  it("tombstones and restores a stroke; applying either twice changes nothing", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { author: "alice" }));
    expect(m.applyEvent(undo(2, "a", "alice")).changes).toContainEqual({ kind: "redraw" });
    expect(m.strokes.get("a")!.deleted).toBe(true);
    expect(m.strokeCount()).toBe(0);
    const again = m.applyEvent(undo(3, "a", "alice"));
    expect(again.changes).not.toContainEqual({ kind: "redraw" });
    expect(m.strokeCount()).toBe(0);
    m.applyEvent(redo(4, "a", "alice"));
    expect(m.strokes.get("a")!.deleted).toBe(false);
    expect(m.strokeCount()).toBe(1);
  });

  it("undoes this user's last live stroke and redoes the last undone", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { author: "alice" }));
    m.applyEvent(stroke(2, "b", { author: "alice" }));
    m.applyEvent(stroke(3, "theirs", { author: "bob" }));
    expect(m.undoTarget()).toBe("b");
    m.applyEvent(undo(4, "b", "alice"));
    expect(m.undoTarget()).toBe("a");
    m.applyEvent(undo(5, "a", "alice"));
    expect(m.undoTarget()).toBeNull();
    expect(m.redoTarget()).toBe("a");
    m.applyEvent(redo(6, "a", "alice"));
    expect(m.redoTarget()).toBe("b");
  });

  it("forgets redo after a new own stroke", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { author: "alice" }));
    m.applyEvent(undo(2, "a", "alice"));
    expect(m.redoTarget()).toBe("a");
    m.applyEvent(stroke(3, "b", { author: "alice" }));
    expect(m.redoTarget()).toBeNull();
  });

  it("targets a pending stroke that the server has not confirmed yet", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { author: "alice" }));
    m.beginPending("p", "s1", "ink", STYLE, pts(1));
    expect(m.undoTarget()).toBe("p");
  });

  it("lets a teacher's undo remove this user's stroke", () => {
    const m = model();
    m.applyEvent(stroke(1, "a", { author: "alice" }));
    m.applyEvent(undo(2, "a", "teacher"));
    expect(m.strokeCount()).toBe(0);
    expect(m.undoTarget()).toBeNull();
    expect(m.redoTarget()).toBeNull();
  });
});

describe("steps, scores, layers, participants, presence", () => {
  it("follows step changes and keeps the latest score", () => {
    const m = model();
    m.applyEvent(event(1, "score_update", { user_id: "alice", step_id: "s1", accuracy: 80, quality: 60, passed: true, details: {} }, "server", "done1"));
    m.applyEvent(event(2, "step_change", { from_step: "s1", to_step: "s2", reason: "passed" }));
    expect(m.stepId).toBe("s2");
    expect(m.latestScore()).toMatchObject({ accuracy: 80, passed: true, seq: 1 });
  });

  it("merges layer props, last writer wins per prop", () => {
    const m = model();
    m.applyEvent(event(1, "layer_set", { layer: "ink", props: { visible: false, opacity: 0.5 } }, "alice", "l1"));
    m.applyEvent(event(2, "layer_set", { layer: "ink", props: { visible: true } }, "alice", "l2"));
    expect(m.layer("ink")).toEqual({ visible: true, opacity: 0.5, z: 0 });
  });

  it("tracks participants joining and leaving", () => {
    const m = model();
    m.applyEvent(event(1, "participant", { user_id: "bob", role: "viewer", state: "joined" }));
    expect(m.participants.get("bob")).toMatchObject({ role: "viewer", online: true });
    m.applyEvent(event(2, "participant", { user_id: "bob", role: "viewer", state: "left" }));
    expect(m.participants.get("bob")!.online).toBe(false);
  });

  it("keeps others' cursors, ignores its own and expires stale ones", () => {
    const m = model();
    m.applyPresence("bob", { cursor: [5, 6] }, 1_000);
    m.applyPresence("alice", { cursor: [1, 1] }, 1_000);
    expect([...m.cursors.keys()]).toEqual(["bob"]);
    expect(m.expireCursors(20_000, 15_000)).toEqual([{ kind: "presence" }]);
    expect(m.cursors.size).toBe(0);
  });
});
