// Pointer events (mouse, pen with pressure, touch) to stroke points in canvas pixels.

import type { Point } from "../protocol";

/** Where a pointer event falls on a canvas of `width`×`height` pixels shown at any CSS size, clamped to the canvas. */
export function toCanvasXY(
  e: { clientX: number; clientY: number },
  rect: { left: number; top: number; width: number; height: number },
  width: number,
  height: number,
): [number, number] {
  const x = ((e.clientX - rect.left) * width) / (rect.width || 1);
  const y = ((e.clientY - rect.top) * height) / (rect.height || 1);
  return [clamp(round2(x), 0, width), clamp(round2(y), 0, height)];
}

/** A mouse has no pressure: it draws at 0.5, the middle of the width range. */
export function pressureOf(e: { pointerType: string; pressure: number }): number {
  if (e.pointerType === "mouse") return 0.5;
  return e.pressure > 0 ? round2(Math.min(1, e.pressure)) : 0.5;
}

export interface PointerSink {
  begin(point: Point): void;
  add(points: Point[]): void;
  end(point: Point | null): void;
  cursor(xy: [number, number] | null): void;
}

/** Wire a canvas's pointer events to a sink; returns the unsubscribe function. */
export function attachPointerInput(
  canvas: HTMLCanvasElement,
  size: { width: number; height: number },
  sink: PointerSink,
  canDraw: () => boolean,
): () => void {
  let activeId: number | null = null;
  let startTs = 0;
  let last: Point | null = null;

  const pointOf = (e: PointerEvent, rect: DOMRect): Point => {
    const [x, y] = toCanvasXY(e, rect, size.width, size.height);
    return [x, y, pressureOf(e), Math.max(0, Math.round(e.timeStamp - startTs))];
  };

  const down = (e: PointerEvent) => {
    if (!canDraw() || activeId !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    activeId = e.pointerId;
    startTs = e.timeStamp;
    canvas.setPointerCapture?.(e.pointerId);
    last = pointOf(e, canvas.getBoundingClientRect());
    sink.begin(last);
  };

  const move = (e: PointerEvent) => {
    const rect = canvas.getBoundingClientRect();
    if (canDraw()) sink.cursor(toCanvasXY(e, rect, size.width, size.height));
    if (activeId !== e.pointerId) return;
    const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    const fresh: Point[] = [];
    for (const ev of events.length ? events : [e]) {
      const p = pointOf(ev, rect);
      if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < 0.75) continue;
      fresh.push(p);
      last = p;
    }
    if (fresh.length) sink.add(fresh);
  };

  const up = (e: PointerEvent) => {
    if (activeId !== e.pointerId) return;
    activeId = null;
    const p = pointOf(e, canvas.getBoundingClientRect());
    const moved = !last || Math.hypot(p[0] - last[0], p[1] - last[1]) >= 0.75;
    sink.end(moved ? p : null);
    last = null;
  };

  const leave = () => {
    if (activeId === null && canDraw()) sink.cursor(null);
  };

  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("pointerleave", leave);
  return () => {
    canvas.removeEventListener("pointerdown", down);
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
    canvas.removeEventListener("pointerleave", leave);
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
