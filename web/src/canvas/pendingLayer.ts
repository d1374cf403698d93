// This user's strokes not yet confirmed by the server, drawn at once (optimistic). The
// layer holds only a few strokes, so it is simply redrawn whenever they change.

import type { Change, SessionModel } from "../sessionModel";
import { drawWholeStroke } from "./draw";
import { FrameScheduler } from "./frameScheduler";

export class PendingLayer {
  private readonly frames = new FrameScheduler(() => this.redraw(), 50);

  constructor(
    private readonly ctx: CanvasRenderingContext2D,
    private readonly model: SessionModel,
  ) {}

  onChanges(changes: readonly Change[]): void {
    if (changes.some((c) => c.kind === "pending" || c.kind === "reset")) this.frames.schedule();
  }

  dispose(): void {
    this.frames.cancel();
  }

  redraw(): void {
    const { ctx } = this;
    ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    for (const p of this.model.pending.values()) {
      if (p.style.tool === "eraser") continue; // an eraser only shows once it is confirmed
      drawWholeStroke(ctx, p.points, p.style, this.model.layer(p.layer).opacity);
    }
  }
}
