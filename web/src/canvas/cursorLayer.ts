// The other participants' cursors with their names, on the top canvas.

import type { Change, SessionModel } from "../sessionModel";
import { FrameScheduler } from "./frameScheduler";

const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324"];

/** A stable colour per user id. */
export function colorFor(userId: string): string {
  let h = 0;
  for (let i = 0; i < userId.length; i++) h = (h * 31 + userId.charCodeAt(i)) | 0;
  return COLORS[Math.abs(h) % COLORS.length];
}

export class CursorLayer {
  private readonly frames = new FrameScheduler(() => this.redraw(), 100);

  constructor(
    private readonly ctx: CanvasRenderingContext2D,
    private readonly model: SessionModel,
  ) {}

  onChanges(changes: readonly Change[]): void {
    if (changes.some((c) => c.kind === "presence")) this.frames.schedule();
  }

  dispose(): void {
    this.frames.cancel();
  }

  redraw(): void {
    const { ctx, model } = this;
    ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    const scale = Math.max(1, ctx.canvas.width / 800);
    ctx.save();
    ctx.font = `${Math.round(12 * scale)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const c of model.cursors.values()) {
      if (!c.cursor) continue;
      const [x, y] = c.cursor;
      const color = colorFor(c.userId);
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x + 10 * scale, y + 4 * scale);
      ctx.lineTo(x + 4 * scale, y + 10 * scale);
      ctx.closePath();
      ctx.fill();
      const label = model.displayName(c.userId);
      const w = ctx.measureText(label).width + 8 * scale;
      ctx.globalAlpha = 0.85;
      ctx.fillRect(x + 10 * scale, y + 10 * scale, w, 16 * scale);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x + 14 * scale, y + 12 * scale);
    }
    ctx.restore();
  }
}
