// Builders of server frames for the unit tests.

import type { OrderedEvent, Point, SessionSnapshot, SnapshotStroke, StrokeStyle } from "../protocol";

export const STYLE: StrokeStyle = { color: "#112233", width: 4, tool: "pen" };

export function pts(n: number, x0 = 10): Point[] {
  return Array.from({ length: n }, (_, i) => [x0 + i, 20, 0.5, i * 10] as Point);
}

export function stroke(
  seq: number,
  strokeId: string,
  opts: { author?: string; points?: Point[]; final?: boolean; opId?: string; step?: string } = {},
): OrderedEvent {
  return {
    type: "stroke_append",
    session_id: "sess",
    seq,
    step_id: opts.step ?? "s1",
    client_op_id: opts.opId ?? (seq === 0 ? strokeId : `${strokeId}-${seq}`),
    author: opts.author ?? "bob",
    ts_server: 1_000 + seq * 100,
    payload: {
      stroke_id: strokeId,
      layer: "ink",
      points: opts.points ?? pts(3),
      style: STYLE,
      final: opts.final ?? true,
    },
  };
}

export function undo(seq: number, target: string, author = "bob", opId = `u${seq}`): OrderedEvent {
  return { type: "undo", session_id: "sess", seq, step_id: "s1", client_op_id: opId, author, ts_server: 1_000 + seq * 100, payload: { target } };
}

export function redo(seq: number, target: string, author = "bob", opId = `r${seq}`): OrderedEvent {
  return { type: "redo", session_id: "sess", seq, step_id: "s1", client_op_id: opId, author, ts_server: 1_000 + seq * 100, payload: { target } };
}

export function event(seq: number, type: string, payload: unknown, author = "server", opId: string | null = null): OrderedEvent {
  return { type, session_id: "sess", seq, step_id: "s1", client_op_id: opId, author, ts_server: 1_000 + seq * 100, payload };
}

export function snapshot(seq: number, strokes: Partial<SnapshotStroke>[] = [], stepId = "s1"): SessionSnapshot {
  return {
    type: "session_snapshot",
    session_id: "sess",
    seq,
    step_id: stepId,
    payload: {
      lesson: {},
      participants: [{ user_id: "alice", role: "student" }],
      layers: {},
      strokes: strokes.map((s, i) => ({
        stroke_id: s.stroke_id ?? `snap${i}`,
        author: s.author ?? "bob",
        step_id: s.step_id ?? stepId,
        layer: s.layer ?? "ink",
        style: s.style ?? STYLE,
        points: s.points ?? pts(3),
        final: s.final ?? true,
        deleted: s.deleted ?? false,
      })),
      scores: [],
    },
  };
}
