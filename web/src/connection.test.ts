import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelayMs, Connection, type ConnectionState } from "./connection";
import type { ClientOp } from "./protocol";
import { SessionModel } from "./sessionModel";
import { FakeSocket } from "./test/fakeSocket";
import { pts, snapshot, stroke } from "./test/events";

const welcome = (resume: "tail" | "snapshot" = "snapshot") => ({
  type: "welcome",
  session_id: "sess",
  user_id: "alice",
  role: "student",
  protocol: 1,
  server_time: 0,
  resume,
  lesson_id: "circles-101",
  step_id: "s1",
});

function strokeOp(id: string, strokeId = id, final = true): ClientOp {
  return {
    type: "stroke_append",
    client_op_id: id,
    step_id: "s1",
    payload: { stroke_id: strokeId, layer: "ink", points: pts(2), style: { color: "#000000", width: 3, tool: "pen" }, final },
  };
}

interface Harness {
  conn: Connection;
  model: SessionModel;
  states: ConnectionState[];
  rejected: string[];
}

function harness(overrides: Partial<ConstructorParameters<typeof Connection>[0]> = {}): Harness {
  const model = new SessionModel();
  const states: ConnectionState[] = [];
  const rejected: string[] = [];
  const conn = new Connection({
    url: "ws://test/v1/ws",
    getToken: async () => "tok",
    getLastSeq: () => model.resumeSeq(),
    socketFactory: (url) => new FakeSocket(url),
    random: () => 0.5,
    handlers: {
      onWelcome: (w) => model.applyWelcome(w),
      onSnapshot: (s) => model.applySnapshot(s),
      onEvent: (ev) => model.applyEvent(ev).result,
      onOpRejected: (op) => rejected.push(op.client_op_id),
      onState: (s) => states.push(s),
    },
    ...overrides,
  });
  return { conn, model, states, rejected };
}

/** Start (or let a reconnect happen) and complete the handshake on the newest socket. */
async function connect(_h: Harness, resume: "tail" | "snapshot" = "snapshot", snapSeq = 0): Promise<FakeSocket> {
  await vi.advanceTimersByTimeAsync(0);
  const sock = FakeSocket.latest();
  sock.open();
  sock.receive(welcome(resume));
  if (resume === "snapshot") sock.receive(snapshot(snapSeq));
  return sock;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.all = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe("handshake", () => {
  it("sends hello with a null last_seq first, then the model's last seq after a reconnect", async () => {
    const h = harness();
    h.conn.start();
    const first = await connect(h, "snapshot", 7);
    expect(first.sent[0]).toEqual({ type: "hello", token: "tok", last_seq: null, client: "inkstep-web/0.1" });
    expect(h.conn.state).toBe("open");
    first.serverClose(1012);
    await vi.advanceTimersByTimeAsync(20_000);
    const second = FakeSocket.latest();
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent[0]).toMatchObject({ type: "hello", last_seq: 7 });
  });

  it("does not send ops before the welcome, then sends them", async () => {
    const h = harness();
    h.conn.start();
    await vi.advanceTimersByTimeAsync(0);
    const sock = FakeSocket.latest();
    sock.open();
    h.conn.send(strokeOp("op1"));
    expect(sock.sentOfType("stroke_append")).toHaveLength(0);
    sock.receive(welcome());
    expect(sock.sentOfType("stroke_append")).toHaveLength(1);
  });
});

describe("confirmation and resend", () => {
  it("resends unconfirmed ops with the same client_op_id after a reconnect, in order", async () => {
    const h = harness();
    h.conn.start();
    const first = await connect(h);
    h.conn.send(strokeOp("a1", "a1", false));
    h.conn.send(strokeOp("a2", "a1", true));
    h.conn.send(strokeOp("b1"));
    first.receive(stroke(1, "a1", { author: "alice", opId: "a1", final: false }));
    expect(h.conn.unconfirmed().map((o) => o.client_op_id)).toEqual(["a2", "b1"]);
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(20_000);
    const second = FakeSocket.latest();
    second.open();
    expect(second.sent[0]).toMatchObject({ type: "hello", last_seq: 1 });
    second.receive(welcome("tail"));
    expect(second.sentOfType("stroke_append").map((f) => f.client_op_id)).toEqual(["a2", "b1"]);
  });

  it("treats an event by someone else with the same client_op_id as no confirmation", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.send(strokeOp("x"));
    sock.receive(stroke(1, "x", { author: "bob", opId: "x" }));
    expect(h.conn.unconfirmed()).toHaveLength(1);
  });

  it("drops an op on a duplicate ack", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.send(strokeOp("x"));
    sock.receive({ type: "ack", client_op_id: "x", seq: 4, duplicate: true });
    expect(h.conn.unconfirmed()).toHaveLength(0);
  });

  it("confirms step_complete by the score_update for this user", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.send({ type: "step_complete", client_op_id: "done1", step_id: "s1" });
    sock.receive({
      type: "score_update", session_id: "sess", seq: 1, step_id: "s1", client_op_id: "done1", author: "server",
      ts_server: 1, payload: { user_id: "alice", step_id: "s1", accuracy: 90, quality: 80, passed: true, details: {} },
    });
    expect(h.conn.unconfirmed()).toHaveLength(0);
  });

  it("reports a refused op and stops resending it", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.send(strokeOp("bad"));
    sock.receive({ type: "error", code: "invalid", message: "no", client_op_id: "bad" });
    expect(h.rejected).toEqual(["bad"]);
    expect(h.conn.unconfirmed()).toHaveLength(0);
  });

  it("retries an op the server could not take (unavailable) with the same id", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.send(strokeOp("later"));
    sock.receive({ type: "error", code: "unavailable", message: "busy", client_op_id: "later" });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sock.sentOfType("stroke_append").map((f) => f.client_op_id)).toEqual(["later", "later"]);
    expect(h.rejected).toEqual([]);
  });
});

describe("gaps", () => {
  it("reconnects with the last applied seq when an event is missing", async () => {
    const h = harness();
    h.conn.start();
    const first = await connect(h);
    first.receive(stroke(1, "a"));
    first.receive(stroke(3, "c"));
    expect(first.closedWith).not.toBeNull();
    expect(h.model.lastSeq).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    const second = FakeSocket.latest();
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent[0]).toMatchObject({ type: "hello", last_seq: 1 });
    second.receive(welcome("tail"));
    second.receive(stroke(2, "b"));
    second.receive(stroke(3, "c"));
    expect(h.model.order).toEqual(["a", "b", "c"]);
  });

  it("resumes when a pong shows the server queued events it never received", async () => {
    const h = harness();
    h.conn.start();
    const first = await connect(h);
    first.receive(stroke(1, "a"));
    first.receive({ type: "pong", t: 1, last_seq: 1 });
    expect(first.closedWith).toBeNull();
    first.receive({ type: "pong", t: 2, last_seq: 3 });
    expect(first.closedWith).not.toBeNull();
    await vi.advanceTimersByTimeAsync(0);
    const second = FakeSocket.latest();
    second.open();
    expect(second.sent[0]).toMatchObject({ type: "hello", last_seq: 1 });
  });

  it("ignores frames from a socket it has dropped", async () => {
    const h = harness();
    h.conn.start();
    const first = await connect(h);
    first.receive(stroke(2, "gap"));
    first.receive(stroke(1, "late"));
    expect(h.model.lastSeq).toBe(0);
  });
});

describe("reconnecting", () => {
  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelayMs(0, 500, 15_000, 0)).toBe(250);
    expect(backoffDelayMs(0, 500, 15_000, 1)).toBe(500);
    expect(backoffDelayMs(3, 500, 15_000, 1)).toBe(4_000);
    expect(backoffDelayMs(30, 500, 15_000, 1)).toBe(15_000);
    expect(backoffDelayMs(30, 500, 15_000, 0)).toBe(7_500);
  });

  it("waits longer after each failed attempt", async () => {
    const h = harness({ random: () => 1 });
    h.conn.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.latest().serverClose(1006);
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeSocket.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.latest().serverClose(1006);
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeSocket.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(3);
  });

  it.each([4401, 4403, 4404])("stops for good on close code %i", async (code) => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    sock.serverClose(code);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(h.conn.state).toBe("closed");
  });

  it.each([4409, 1011, 1012, 4429])("reconnects on close code %i", async (code) => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    sock.serverClose(code);
    expect(h.conn.state).toBe("connecting");
    await vi.advanceTimersByTimeAsync(20_000);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("pings every 10 s and reconnects after 30 s without a frame", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sock.sentOfType("ping")).toHaveLength(1);
    sock.receive({ type: "pong", t: 1 });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(sock.closedWith).toBeNull();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(sock.closedWith).not.toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all.length).toBeGreaterThan(1);
  });

  it("reconnects at once on wake when the link went stale (laptop sleep)", async () => {
    let now = 1_000_000;
    const h = harness({ now: () => now });
    h.conn.start();
    const sock = await connect(h);
    now += 5 * 60_000; // asleep: no timers ran
    h.conn.wake();
    expect(sock.closedWith).not.toBeNull();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("skips the backoff wait when the browser comes back online", async () => {
    const h = harness({ random: () => 1 });
    h.conn.start();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 5; i++) {
      FakeSocket.latest().serverClose(1006);
      await vi.advanceTimersByTimeAsync(20_000);
    }
    FakeSocket.latest().serverClose(1006);
    const before = FakeSocket.all.length;
    h.conn.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all.length).toBe(before + 1);
  });

  it("asks for a token before every connect", async () => {
    const tokens = ["t1", "t2"];
    const h = harness({ getToken: async () => tokens.shift() ?? "t3" });
    h.conn.start();
    const first = await connect(h);
    expect(first.sent[0]).toMatchObject({ token: "t1" });
    first.serverClose(1012);
    await vi.advanceTimersByTimeAsync(20_000);
    FakeSocket.latest().open();
    expect(FakeSocket.latest().sent[0]).toMatchObject({ token: "t2" });
  });

  it("stops cleanly and opens nothing more", async () => {
    const h = harness();
    h.conn.start();
    const sock = await connect(h);
    h.conn.stop();
    expect(sock.closedWith).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(h.states[h.states.length - 1]).toBe("closed");
  });
});

describe("options", () => {
  it("keeps defaults for options given as undefined", () => {
    const conn = new Connection({
      url: "ws://x",
      getToken: async () => "t",
      getLastSeq: () => null,
      handlers: { onEvent: () => "applied" },
      socketFactory: undefined,
      now: undefined,
    });
    expect(conn.state).toBe("connecting");
    expect(conn.unconfirmed()).toEqual([]);
  });
});

describe("offline", () => {
  it("drops the link when the browser goes offline and resumes with last_seq when it is back", async () => {
    let online = true;
    const h = harness({ isOnline: () => online });
    h.conn.start();
    const first = await connect(h);
    first.receive(stroke(1, "a"));
    online = false;
    h.conn.goOffline();
    expect(first.closedWith).not.toBeNull();
    expect(h.conn.state).toBe("connecting");
    h.conn.wake(); // a focus event while still offline changes nothing
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    online = true;
    h.conn.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.latest().open();
    expect(FakeSocket.latest().sent[0]).toMatchObject({ type: "hello", last_seq: 1 });
  });
});
