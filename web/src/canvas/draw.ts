// Drawing stroke segments on a 2D context, grouped by line width so one stroke() call
// draws many segments.

import type { Point, StrokeStyle } from "../protocol";
import { curveCount, curveSegment, pressureBucket, tailSegment, widthFor, type Segment } from "./smooth";

/** Segments of one stroke in Path2D objects, one per pressure bucket. */
export class StrokePath {
  readonly groups = new Map<number, Path2D>();
  /** Curved segments already added. */
  curves = 0;
  tail = false;

  /** Add the segments that `points` now allow; returns only the new ones, grouped the same way. */
  extend(points: Point[], final: boolean): Map<number, Path2D> {
    const fresh = new Map<number, Path2D>();
    const total = curveCount(points.length);
    for (let i = this.curves + 1; i <= total; i++) this.add(curveSegment(points, i), fresh);
    this.curves = Math.max(this.curves, total);
    if (final && !this.tail && points.length > 0) {
      this.add(tailSegment(points), fresh);
      this.tail = true;
    }
    return fresh;
  }

  private add(seg: Segment, fresh: Map<number, Path2D>): void {
    const bucket = pressureBucket(seg.pressure);
    for (const target of [this.groupFor(this.groups, bucket), this.groupFor(fresh, bucket)]) {
      target.moveTo(seg.start[0], seg.start[1]);
      if (seg.control) target.quadraticCurveTo(seg.control[0], seg.control[1], seg.end[0], seg.end[1]);
      else target.lineTo(seg.end[0], seg.end[1]);
    }
  }

  private groupFor(map: Map<number, Path2D>, bucket: number): Path2D {
    let path = map.get(bucket);
    if (!path) {
      path = new Path2D();
      map.set(bucket, path);
    }
    return path;
  }
}

/** Stroke grouped paths with the stroke's style. */
export function strokeGroups(
  ctx: CanvasRenderingContext2D,
  groups: Map<number, Path2D>,
  style: StrokeStyle,
  alpha = 1,
): void {
  if (groups.size === 0) return;
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.globalCompositeOperation = style.tool === "eraser" ? "destination-out" : "source-over";
  ctx.strokeStyle = style.color;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const [bucket, path] of groups) {
    ctx.lineWidth = widthFor(style.width, bucket / 10);
    ctx.stroke(path);
  }
  ctx.restore();
}

/** Draw a whole stroke without caching (pending strokes, which change every frame). */
export function drawWholeStroke(ctx: CanvasRenderingContext2D, points: Point[], style: StrokeStyle, alpha = 1): void {
  const path = new StrokePath();
  path.extend(points, true);
  strokeGroups(ctx, path.groups, style, alpha);
}
