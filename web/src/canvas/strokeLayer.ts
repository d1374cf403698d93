// The confirmed-strokes canvas: new batches are drawn incrementally (only their new
// segments); the whole layer is redrawn only after undo/redo, layer changes or a snapshot,
// from cached paths.

import type { Change, SessionModel, Stroke } from "../sessionModel";
import { StrokePath, strokeGroups } from "./draw";
import { FrameScheduler } from "./frameScheduler";

export class StrokeLayer {
  private readonly paths = new Map<string, StrokePath>();
  private readonly dirty = new Set<string>();
  private fullRedraw = true;
  private readonly frames = new FrameScheduler(() => this.flush());

  constructor(
    private readonly ctx: CanvasRenderingContext2D,
    private readonly model: SessionModel,
  ) {
    this.frames.schedule();
  }

  /** Take note of model changes; drawing happens on the next frame. */
  onChanges(changes: readonly Change[]): void {
    let any = false;
    for (const c of changes) {
      if (c.kind === "append") {
        this.dirty.add(c.strokeId);
        any = true;
      } else if (c.kind === "redraw") {
        this.fullRedraw = true;
        any = true;
      } else if (c.kind === "reset") {
        this.paths.clear();
        this.fullRedraw = true;
        any = true;
      }
    }
    if (any) this.frames.schedule();
  }

  /** Forget cached paths (the model was replaced wholesale, e.g. seeking in a replay). */
  reset(): void {
    this.paths.clear();
    this.dirty.clear();
    this.fullRedraw = true;
    this.frames.schedule();
  }

  dispose(): void {
    this.frames.cancel();
  }

  /** Draw what changed now (also used by tests and the replay's seek). */
  flush(): void {
    if (this.fullRedraw) this.redrawAll();
    else for (const id of this.dirty) this.drawIncrement(id);
    this.dirty.clear();
    this.fullRedraw = false;
  }

  private drawIncrement(id: string): void {
    const stroke = this.model.strokes.get(id);
    if (!stroke || stroke.deleted) return;
    const layer = this.model.layer(stroke.layer);
    if (!layer.visible) return;
    if (!this.isTopLayer(stroke.layer)) {
      // Drawing it now would cover strokes of layers above it.
      this.redrawAll();
      return;
    }
    const fresh = this.pathFor(id).extend(stroke.points, stroke.final);
    strokeGroups(this.ctx, fresh, stroke.style, layer.opacity);
  }

  private redrawAll(): void {
    const { ctx, model } = this;
    ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    const byLayer = new Map<string, Stroke[]>();
    for (const id of model.order) {
      const s = model.strokes.get(id);
      if (!s) continue;
      if (s.deleted) {
        this.paths.delete(id); // rebuilt if a redo restores it
        continue;
      }
      const list = byLayer.get(s.layer);
      if (list) list.push(s);
      else byLayer.set(s.layer, [s]);
    }
    const layers = [...byLayer.keys()].sort((a, b) => model.layer(a).z - model.layer(b).z);
    for (const name of layers) {
      const props = model.layer(name);
      if (!props.visible) continue;
      for (const s of byLayer.get(name)!) {
        const path = this.pathFor(s.id);
        path.extend(s.points, s.final);
        strokeGroups(ctx, path.groups, s.style, props.opacity);
      }
    }
  }

  private isTopLayer(layer: string): boolean {
    const z = this.model.layer(layer).z;
    for (const name of Object.keys(this.model.layers)) {
      if (name !== layer && this.model.layer(name).z > z) return false;
    }
    return true;
  }

  private pathFor(id: string): StrokePath {
    let p = this.paths.get(id);
    if (!p) {
      p = new StrokePath();
      this.paths.set(id, p);
    }
    return p;
  }
}
