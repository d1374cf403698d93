// The current step's reference shapes, drawn as a faint guide under the strokes.

import type { Shape } from "../protocol";

export function drawReference(ctx: CanvasRenderingContext2D, shapes: readonly Shape[]): void {
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.save();
  ctx.strokeStyle = "rgba(66, 133, 244, 0.45)";
  ctx.lineWidth = 3;
  ctx.setLineDash([10, 8]);
  ctx.lineCap = "round";
  for (const shape of shapes) {
    ctx.beginPath();
    traceShape(ctx, shape);
    ctx.stroke();
  }
  ctx.restore();
}

function traceShape(ctx: CanvasRenderingContext2D, shape: Shape): void {
  switch (shape.kind) {
    case "line":
      ctx.moveTo(shape.x1, shape.y1);
      ctx.lineTo(shape.x2, shape.y2);
      return;
    case "polyline":
      shape.points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
      if (shape.closed) ctx.closePath();
      return;
    case "circle":
      ctx.arc(shape.cx, shape.cy, shape.r, 0, Math.PI * 2);
      return;
    case "ellipse":
      ctx.ellipse(shape.cx, shape.cy, shape.rx, shape.ry, ((shape.angle_deg ?? 0) * Math.PI) / 180, 0, Math.PI * 2);
      return;
  }
}
