import { describe, expect, it } from "vitest";
import type { Point, StrokeAppendOp } from "./protocol";
import { makeOpIdGenerator } from "./opId";
import { StrokeBatcher } from "./strokeBatcher";
import { STYLE } from "./test/events";

function setup() {
  const sent: StrokeAppendOp[] = [];
  const timers: Array<() => void> = [];
  const b = new StrokeBatcher({
    nextOpId: makeOpIdGenerator("t"),
    emit: (op) => sent.push(op),
    setTimer: (fn) => timers.push(fn),
    clearTimer: () => timers.splice(0),
  });
  const fire = () => timers.splice(0).forEach((fn) => fn());
  return { b, sent, fire };
}

const p = (x: number): Point => [x, 1, 0.5, x];

describe("StrokeBatcher", () => {
  it("names the stroke after its first batch's client_op_id and sends it at once", () => {
    const { b, sent } = setup();
    const id = b.begin("s1", "ink", STYLE, p(0));
    expect(sent).toHaveLength(1);
    expect(sent[0].client_op_id).toBe(id);
    expect(sent[0].payload).toMatchObject({ stroke_id: id, final: false, points: [p(0)] });
  });

  it("batches points until the timer fires, each batch with its own op id", () => {
    const { b, sent, fire } = setup();
    const id = b.begin("s1", "ink", STYLE, p(0));
    b.add([p(1), p(2)]);
    b.add([p(3)]);
    expect(sent).toHaveLength(1);
    fire();
    expect(sent).toHaveLength(2);
    expect(sent[1].payload.points).toEqual([p(1), p(2), p(3)]);
    expect(sent[1].payload.stroke_id).toBe(id);
    expect(sent[1].client_op_id).not.toBe(id);
  });

  it("never sends more than 512 points in a batch", () => {
    const { b, sent, fire } = setup();
    b.begin("s1", "ink", STYLE, p(0));
    b.add(Array.from({ length: 1100 }, (_, i) => p(i + 1)));
    fire();
    b.end(null);
    const sizes = sent.map((op) => op.payload.points.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(512);
    // 1101 drawn points, plus the last one repeated in the final batch (nothing was left to send).
    expect(sizes.reduce((a, n) => a + n, 0)).toBe(1102);
  });

  it("marks the last batch final, with the pointer-up point", () => {
    const { b, sent } = setup();
    b.begin("s1", "ink", STYLE, p(0));
    b.add([p(1)]);
    b.end(p(2));
    const last = sent[sent.length - 1];
    expect(last.payload.final).toBe(true);
    expect(last.payload.points).toEqual([p(1), p(2)]);
    expect(sent.filter((op) => op.payload.final)).toHaveLength(1);
    expect(b.active).toBe(false);
  });

  it("repeats the last point when nothing is left to send at pointer-up", () => {
    const { b, sent, fire } = setup();
    b.begin("s1", "ink", STYLE, p(0));
    b.add([p(5)]);
    fire();
    b.end(null);
    expect(sent[sent.length - 1].payload).toMatchObject({ final: true, points: [p(5)] });
  });

  it("keeps the stroke's step and layer on every batch", () => {
    const { b, sent, fire } = setup();
    b.begin("s2", "sketch", STYLE, p(0));
    b.add([p(1)]);
    fire();
    b.end(null);
    expect(new Set(sent.map((op) => `${op.step_id}/${op.payload.layer}`))).toEqual(new Set(["s2/sketch"]));
  });
});
