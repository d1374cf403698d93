// Turns the points of one local stroke into `stroke_append` ops: one batch every
// `intervalMs` (50–100 ms), at most 512 points each, the last one marked final.

import { MAX_POINTS_PER_BATCH, type Point, type StrokeAppendOp, type StrokeStyle } from "./protocol";

export interface BatcherOptions {
  nextOpId(): string;
  emit(op: StrokeAppendOp): void;
  intervalMs?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

interface OpenStroke {
  strokeId: string;
  stepId: string;
  layer: string;
  style: StrokeStyle;
  buffer: Point[];
  lastPoint: Point;
}

/** Batches one stroke at a time; the stroke's id is the client_op_id of its first batch. */
export class StrokeBatcher {
  private current: OpenStroke | null = null;
  private timer: unknown = null;
  private readonly intervalMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly opts: BatcherOptions) {
    this.intervalMs = opts.intervalMs ?? 75;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  get active(): boolean {
    return this.current !== null;
  }

  /** Start a stroke with its first point; returns the stroke_id (sent at once, so others see it start). */
  begin(stepId: string, layer: string, style: StrokeStyle, first: Point): string {
    if (this.current) this.end(null);
    const strokeId = this.opts.nextOpId();
    this.current = { strokeId, stepId, layer, style, buffer: [], lastPoint: first };
    this.emitBatch(strokeId, [first], false);
    return strokeId;
  }

  add(points: Point[]): void {
    const s = this.current;
    if (!s || points.length === 0) return;
    for (const p of points) s.buffer.push(p);
    s.lastPoint = points[points.length - 1];
    while (s.buffer.length >= MAX_POINTS_PER_BATCH) {
      this.emitBatch(this.nextId(), s.buffer.splice(0, MAX_POINTS_PER_BATCH), false);
    }
    if (this.timer === null && s.buffer.length > 0) {
      this.timer = this.setTimer(() => this.flush(), this.intervalMs);
    }
  }

  /** Send what is buffered (called by the timer). */
  flush(): void {
    this.timer = null;
    const s = this.current;
    if (!s || s.buffer.length === 0) return;
    this.emitBatch(this.nextId(), s.buffer.splice(0, MAX_POINTS_PER_BATCH), false);
  }

  /** Finish the stroke: the remaining points go out with `final: true` (repeating the last point if none are left). */
  end(last: Point | null): void {
    const s = this.current;
    if (!s) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    if (last) s.buffer.push(last);
    if (s.buffer.length === 0) s.buffer.push(s.lastPoint);
    while (s.buffer.length > MAX_POINTS_PER_BATCH) {
      this.emitBatch(this.nextId(), s.buffer.splice(0, MAX_POINTS_PER_BATCH), false);
    }
    this.emitBatch(this.nextId(), s.buffer.splice(0), true);
    this.current = null;
  }

  private nextId(): string {
    return this.opts.nextOpId();
  }

  private emitBatch(clientOpId: string, points: Point[], final: boolean): void {
    const s = this.current!;
    this.opts.emit({
      type: "stroke_append",
      client_op_id: clientOpId,
      step_id: s.stepId,
      payload: { stroke_id: s.strokeId, layer: s.layer, points, style: s.style, final },
    });
  }
}
