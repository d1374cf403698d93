import { describe, expect, it } from "vitest";
import type { Point } from "../protocol";
import { curveCount, curveSegment, pressureBucket, tailSegment, widthFor } from "./smooth";

const P = (x: number, y: number, pr = 0.5): Point => [x, y, pr, 0];

describe("smoothing", () => {
  it("chains curves through midpoints so consecutive segments join", () => {
    const pts = [P(0, 0), P(10, 0), P(20, 10), P(30, 10)];
    expect(curveCount(pts.length)).toBe(2);
    const a = curveSegment(pts, 1);
    const b = curveSegment(pts, 2);
    const tail = tailSegment(pts);
    expect(a.start).toEqual([0, 0]);
    expect(a.control).toEqual([10, 0]);
    expect(a.end).toEqual(b.start);
    expect(b.end).toEqual(tail.start);
    expect(tail.end).toEqual([30, 10]);
  });

  it("draws two points as a line and one point as a dot", () => {
    expect(curveCount(2)).toBe(0);
    expect(tailSegment([P(1, 1), P(5, 5)])).toMatchObject({ start: [1, 1], end: [5, 5], control: null });
    const dot = tailSegment([P(3, 4)]);
    expect(dot.start).toEqual([3, 4]);
    expect(dot.end[0]).toBeGreaterThan(3);
  });

  it("maps mouse pressure to the style width and pen pressure around it", () => {
    expect(widthFor(10, 0.5)).toBeCloseTo(10);
    expect(widthFor(10, 1)).toBeCloseTo(16);
    expect(widthFor(10, 0)).toBeCloseTo(4);
    expect(widthFor(10, Number.NaN)).toBeCloseTo(10);
    expect(pressureBucket(0.54)).toBe(5);
  });
});
