import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Point, StrokeAppendOp } from "./protocol";
import { SessionController } from "./sessionController";
import { FakeSocket } from "./test/fakeSocket";
import { snapshot } from "./test/events";

const far = "2099-01-01T00:00:00Z";

async function live(role: "student" | "viewer" | "teacher" = "student") {
  const rejoin = vi.fn(async () => ({ token: "fresh", ws_url: "/v1/ws", expires_at: far }));
  const c = new SessionController({
    sessionId: "sess",
    role,
    wsUrl: "ws://t/v1/ws",
    join: { token: "tok", ws_url: "/v1/ws", expires_at: far },
    rejoin,
    socketFactory: (url) => new FakeSocket(url),
  });
  c.start();
  await vi.advanceTimersByTimeAsync(0);
  const sock = FakeSocket.latest();
  sock.open();
  sock.receive({ type: "welcome", session_id: "sess", user_id: "alice", role, protocol: 1, server_time: 0, resume: "snapshot", lesson_id: "l", step_id: "s1" });
  sock.receive(snapshot(0));
  return { c, sock, rejoin };
}

/** The server's side: turn each sent stroke op into its event, with the next seq. */
function echo(sock: FakeSocket, from: number): number {
  let seq = from;
  for (const f of sock.sent.filter((f) => f.type === "stroke_append" || f.type === "undo" || f.type === "redo")) {
    const op = f as unknown as StrokeAppendOp;
    sock.receive({ type: op.type, session_id: "sess", seq: ++seq, step_id: "s1", client_op_id: op.client_op_id, author: "alice", ts_server: seq, payload: op.payload });
  }
  sock.sent = [];
  return seq;
}

const P = (x: number): Point => [x, 10, 0.5, x];

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.all = [];
});
afterEach(() => vi.useRealTimers());

describe("SessionController", () => {
  it("draws optimistically and reconciles when the stroke's events come back", async () => {
    const { c, sock } = await live();
    c.beginStroke(P(0));
    c.addPoints([P(1), P(2), P(3)]);
    expect(c.model.pending.size).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    c.endStroke(P(4));
    const ops = sock.sentOfType("stroke_append") as unknown as StrokeAppendOp[];
    expect(ops.map((o) => o.payload.final)).toEqual([false, false, true]);
    expect(new Set(ops.map((o) => o.payload.stroke_id)).size).toBe(1);
    expect(ops[0].payload.stroke_id).toBe(ops[0].client_op_id);
    echo(sock, 0);
    expect(c.model.pending.size).toBe(0);
    expect(c.model.strokeCount()).toBe(1);
    expect(c.model.strokes.get(ops[0].client_op_id)!.points).toHaveLength(5);
    expect(c.conn.unconfirmed()).toHaveLength(0);
    c.stop();
  });

  it("undoes the last own stroke and redoes it", async () => {
    const { c, sock } = await live();
    c.beginStroke(P(0));
    c.endStroke(P(9));
    let seq = echo(sock, 0);
    const id = c.model.order[0];
    c.undo();
    expect(sock.sentOfType("undo")[0]).toMatchObject({ payload: { target: id } });
    seq = echo(sock, seq);
    expect(c.model.strokeCount()).toBe(0);
    expect(c.view.getState().canRedo).toBe(true);
    c.redo();
    expect(sock.sentOfType("redo")[0]).toMatchObject({ payload: { target: id } });
    echo(sock, seq);
    expect(c.model.strokeCount()).toBe(1);
    c.stop();
  });

  it("lets a viewer send nothing from the canvas", async () => {
    const { c, sock } = await live("viewer");
    sock.sent = [];
    c.beginStroke(P(0));
    c.addPoints([P(1)]);
    c.endStroke(P(2));
    c.sendCursor([5, 5]);
    c.undo();
    c.completeStep();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sock.sent.filter((f) => f.type !== "ping")).toEqual([]);
    c.stop();
  });

  it("sends the cursor at most 20 times a second, the latest position last", async () => {
    const { c, sock } = await live();
    sock.sent = [];
    for (let i = 0; i < 100; i++) {
      c.sendCursor([i, i]);
      await vi.advanceTimersByTimeAsync(5);
    }
    await vi.advanceTimersByTimeAsync(100);
    const sent = sock.sentOfType("presence");
    expect(sent.length).toBeLessThanOrEqual(11);
    expect(sent[sent.length - 1]).toEqual({ type: "presence", payload: { cursor: [99, 99], tool: "pen" } });
    c.stop();
  });

  it("resends an unconfirmed stroke with the same ids after the link drops", async () => {
    const { c, sock } = await live();
    c.beginStroke(P(0));
    c.endStroke(P(5));
    const first = sock.sentOfType("stroke_append").map((f) => f.client_op_id);
    sock.serverClose(1006);
    await vi.advanceTimersByTimeAsync(20_000);
    const again = FakeSocket.latest();
    again.open();
    expect(again.sent[0]).toMatchObject({ type: "hello", last_seq: 0 });
    again.receive({ type: "welcome", session_id: "sess", user_id: "alice", role: "student", protocol: 1, server_time: 0, resume: "tail", lesson_id: "l", step_id: "s1" });
    expect(again.sentOfType("stroke_append").map((f) => f.client_op_id)).toEqual(first);
    c.stop();
  });

  it("gets a fresh session token when the current one has expired", async () => {
    const rejoin = vi.fn(async () => ({ token: "fresh", ws_url: "/v1/ws", expires_at: far }));
    const c = new SessionController({
      sessionId: "sess",
      role: "student",
      wsUrl: "ws://t/v1/ws",
      join: { token: "old", ws_url: "/v1/ws", expires_at: "2000-01-01T00:00:00Z" },
      rejoin,
      socketFactory: (url) => new FakeSocket(url),
    });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.latest().open();
    expect(rejoin).toHaveBeenCalledOnce();
    expect(FakeSocket.latest().sent[0]).toMatchObject({ type: "hello", token: "fresh" });
    c.stop();
  });
});
