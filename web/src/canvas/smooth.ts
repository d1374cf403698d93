// Stroke geometry: a polyline smoothed with quadratic curves through the midpoints of its
// points, cut into segments so a growing stroke can be drawn piece by piece.

import type { Point } from "../protocol";

/** One drawable piece: from `start` to `end`, bending toward `control` when it is set. */
export interface Segment {
  start: [number, number];
  control: [number, number] | null;
  end: [number, number];
  pressure: number;
}

function mid(a: Point, b: Point): [number, number] {
  return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
}

/** How many curved segments exist for `n` points before the tail (the tail needs the stroke to end). */
export function curveCount(n: number): number {
  return Math.max(0, n - 2);
}

/** Curved segment `i` (1-based, 1 ≤ i ≤ n-2): from the previous midpoint, around point i, to the next midpoint. */
export function curveSegment(points: Point[], i: number): Segment {
  const p = points[i];
  const start: [number, number] = i === 1 ? [points[0][0], points[0][1]] : mid(points[i - 1], p);
  return { start, control: [p[0], p[1]], end: mid(p, points[i + 1]), pressure: p[2] };
}

/** The straight piece from the last midpoint to the last point (a dot for a one-point stroke). */
export function tailSegment(points: Point[]): Segment {
  const n = points.length;
  const last = points[n - 1];
  const start: [number, number] = n >= 3 ? mid(points[n - 2], last) : [points[0][0], points[0][1]];
  const end: [number, number] = n === 1 ? [last[0] + 0.01, last[1]] : [last[0], last[1]];
  return { start, control: null, end, pressure: last[2] };
}

/** Line width for a pressure: a mouse (0.5) draws at the style width; a pen varies 0.4×–1.6×. */
export function widthFor(styleWidth: number, pressure: number): number {
  const p = Number.isFinite(pressure) ? Math.min(1, Math.max(0, pressure)) : 0.5;
  return styleWidth * (0.4 + 1.2 * p);
}

/** Pressure rounded to tenths, so a stroke's segments fall into a few same-width groups. */
export function pressureBucket(pressure: number): number {
  return Math.round(Math.min(1, Math.max(0, pressure)) * 10);
}
