// The session's state on this client: applies seq'd events strictly in order, holds the
// snapshot-derived state, and keeps this user's pending (not yet confirmed) strokes.
// No I/O, no DOM: every method returns the changes a renderer needs to draw.

import type {
  LayerProps,
  OrderedEvent,
  Point,
  PresencePayload,
  Role,
  ScorePayload,
  SessionSnapshot,
  SnapshotParticipant,
  StrokePayload,
  StrokeStyle,
} from "./protocol";

export interface Stroke {
  id: string;
  author: string;
  stepId: string;
  layer: string;
  style: StrokeStyle;
  points: Point[];
  final: boolean;
  deleted: boolean;
  /** seq of the event that created it (0 when it came from a snapshot). */
  firstSeq: number;
}

export interface PendingStroke {
  id: string;
  stepId: string;
  layer: string;
  style: StrokeStyle;
  /** Every point drawn locally, confirmed or not. */
  points: Point[];
  /** How many of `points` the server has confirmed. */
  confirmed: number;
  /** The pointer was released: no more points will be added. */
  ended: boolean;
}

export interface Participant {
  userId: string;
  role: Role | null;
  name: string;
  online: boolean;
}

export interface Cursor {
  userId: string;
  cursor: [number, number] | null;
  tool: string | null;
  status: string | null;
  atMs: number;
}

export interface Score extends ScorePayload {
  seq: number;
}

/** What changed, for the renderers. */
export type Change =
  | { kind: "append"; strokeId: string; from: number }
  | { kind: "redraw" }
  | { kind: "reset" }
  | { kind: "pending" }
  | { kind: "meta" }
  | { kind: "presence" };

export type ApplyResult = "applied" | "duplicate" | "gap";

export interface ApplyOutcome {
  result: ApplyResult;
  changes: Change[];
}

const NO_CHANGES: Change[] = [];

/** Reducer-style session state; the same instance is mutated and reports what changed. */
export class SessionModel {
  userId: string | null = null;
  role: Role | null = null;
  sessionId: string | null = null;
  lessonId: string | null = null;
  stepId: string | null = null;
  /** seq of the last applied event; meaningful only once `synced`. */
  lastSeq = 0;
  /** A snapshot (or a resumed tail) has been applied: `lastSeq` can be sent in hello. */
  synced = false;
  readonly strokes = new Map<string, Stroke>();
  /** Stroke ids in drawing order (the seq of their first batch). */
  order: string[] = [];
  readonly pending = new Map<string, PendingStroke>();
  layers: Record<string, LayerProps> = {};
  scores: Score[] = [];
  readonly participants = new Map<string, Participant>();
  readonly cursors = new Map<string, Cursor>();
  /** Strokes this user undid, most recent last; the next redo restores the last one. */
  redoStack: string[] = [];
  private liveCount = 0;

  constructor(userId: string | null = null) {
    this.userId = userId;
  }

  /** Number of confirmed strokes that are not undone. */
  strokeCount(): number {
    return this.liveCount;
  }

  /** The value to send as `last_seq` in hello: null asks for a snapshot. */
  resumeSeq(): number | null {
    return this.synced ? this.lastSeq : null;
  }

  applyWelcome(w: {
    user_id: string;
    role: Role;
    session_id: string;
    lesson_id: string;
    step_id: string;
  }): Change[] {
    this.userId = w.user_id;
    this.role = w.role;
    this.sessionId = w.session_id;
    this.lessonId = w.lesson_id;
    if (!this.synced) this.stepId = w.step_id;
    return [{ kind: "meta" }];
  }

  /** Replace the state with the server's state after event `snap.seq`. */
  applySnapshot(snap: SessionSnapshot): Change[] {
    this.strokes.clear();
    this.order = [];
    this.liveCount = 0;
    for (const s of snap.payload.strokes ?? []) {
      this.strokes.set(s.stroke_id, {
        id: s.stroke_id,
        author: s.author,
        stepId: s.step_id,
        layer: s.layer,
        style: s.style,
        points: s.points.slice(),
        final: s.final,
        deleted: s.deleted,
        firstSeq: 0,
      });
      this.order.push(s.stroke_id);
      if (!s.deleted) this.liveCount++;
    }
    this.layers = { ...(snap.payload.layers ?? {}) };
    this.scores = (snap.payload.scores ?? []).map((s) => ({ ...s, seq: 0 }));
    this.participants.clear();
    for (const p of snap.payload.participants ?? []) this.addParticipant(normalizeParticipant(p));
    this.stepId = snap.step_id;
    this.sessionId = snap.session_id;
    this.lastSeq = snap.seq;
    this.synced = true;
    this.redoStack = this.redoStack.filter((id) => this.strokes.get(id)?.deleted === true);
    this.reconcilePendingWithConfirmed();
    return [{ kind: "reset" }, { kind: "pending" }, { kind: "meta" }];
  }

  /** Apply one seq'd event; events at or below lastSeq are duplicates, a jump is a gap. */
  applyEvent(ev: OrderedEvent): ApplyOutcome {
    if (ev.seq <= this.lastSeq) return { result: "duplicate", changes: NO_CHANGES };
    if (ev.seq !== this.lastSeq + 1) return { result: "gap", changes: NO_CHANGES };
    this.lastSeq = ev.seq;
    this.synced = true;
    return { result: "applied", changes: this.reduce(ev) };
  }

  private reduce(ev: OrderedEvent): Change[] {
    switch (ev.type) {
      case "stroke_append":
        return this.onStrokeAppend(ev.seq, ev.step_id, ev.author, ev.payload as StrokePayload);
      case "undo":
        return this.onTombstone(ev.author, (ev.payload as { target: string }).target, true);
      case "redo":
        return this.onTombstone(ev.author, (ev.payload as { target: string }).target, false);
      case "layer_set":
        return this.onLayerSet(ev.payload as { layer: string; props: LayerProps });
      case "step_change":
        this.stepId = (ev.payload as { to_step: string }).to_step;
        return [{ kind: "meta" }];
      case "score_update":
        this.scores.push({ ...(ev.payload as ScorePayload), seq: ev.seq });
        return [{ kind: "meta" }];
      case "participant":
        return this.onParticipant(ev.payload as Partial<Participant> & Record<string, unknown>);
      default:
        return NO_CHANGES; // unknown event types are skipped (forward compatibility)
    }
  }

  private onStrokeAppend(seq: number, stepId: string, author: string, p: StrokePayload): Change[] {
    let stroke = this.strokes.get(p.stroke_id);
    const changes: Change[] = [];
    if (!stroke) {
      stroke = {
        id: p.stroke_id,
        author,
        stepId,
        layer: p.layer,
        style: p.style,
        points: [],
        final: false,
        deleted: false,
        firstSeq: seq,
      };
      this.strokes.set(stroke.id, stroke);
      this.order.push(stroke.id);
      this.liveCount++;
      if (author === this.userId) this.redoStack = [];
      changes.push({ kind: "meta" });
    }
    const from = stroke.points.length;
    for (const pt of p.points) stroke.points.push(pt);
    stroke.final = stroke.final || p.final;
    if (!stroke.deleted) changes.push({ kind: "append", strokeId: stroke.id, from });
    if (author === this.userId && this.pending.has(stroke.id)) {
      this.confirmPending(stroke);
      changes.push({ kind: "pending" });
    }
    return changes;
  }

  private onTombstone(author: string, target: string, deleted: boolean): Change[] {
    const stroke = this.strokes.get(target);
    if (author === this.userId) {
      this.redoStack = this.redoStack.filter((id) => id !== target);
      if (deleted) this.redoStack.push(target);
    } else if (!deleted) {
      this.redoStack = this.redoStack.filter((id) => id !== target);
    }
    if (!stroke || stroke.deleted === deleted) return [{ kind: "meta" }]; // idempotent
    stroke.deleted = deleted;
    this.liveCount += deleted ? -1 : 1;
    return [{ kind: "redraw" }, { kind: "meta" }];
  }

  private onLayerSet(p: { layer: string; props: LayerProps }): Change[] {
    const merged: LayerProps = { ...(this.layers[p.layer] ?? {}) };
    for (const [key, value] of Object.entries(p.props)) {
      if (value !== null && value !== undefined) (merged as Record<string, unknown>)[key] = value;
    }
    this.layers = { ...this.layers, [p.layer]: merged };
    return [{ kind: "redraw" }, { kind: "meta" }];
  }

  private onParticipant(p: Partial<Participant> & Record<string, unknown>): Change[] {
    const userId = String(p.user_id ?? "");
    if (!userId) return NO_CHANGES;
    const joined = p.state !== "left";
    const prev = this.participants.get(userId);
    this.addParticipant({
      userId,
      role: (p.role as Role | undefined) ?? prev?.role ?? null,
      name: typeof p.name === "string" ? p.name : (prev?.name ?? userId),
      online: joined,
    });
    if (!joined) this.cursors.delete(userId);
    return [{ kind: "meta" }, { kind: "presence" }];
  }

  private addParticipant(p: Participant): void {
    this.participants.set(p.userId, p);
  }

  // ---- own pending strokes (optimistic drawing) ----

  /** Start a stroke drawn locally; it shows on the pending layer until confirmed. */
  beginPending(id: string, stepId: string, layer: string, style: StrokeStyle, first: Point[]): Change[] {
    this.pending.set(id, { id, stepId, layer, style, points: first.slice(), confirmed: 0, ended: false });
    return [{ kind: "pending" }, { kind: "meta" }];
  }

  addPendingPoints(id: string, points: Point[], end = false): Change[] {
    const p = this.pending.get(id);
    if (!p) return NO_CHANGES;
    for (const pt of points) p.points.push(pt);
    p.ended = p.ended || end;
    return [{ kind: "pending" }];
  }

  /** The server refused (part of) a pending stroke: stop showing it locally. */
  dropPending(id: string): Change[] {
    return this.pending.delete(id) ? [{ kind: "pending" }, { kind: "meta" }] : NO_CHANGES;
  }

  private confirmPending(stroke: Stroke): void {
    const p = this.pending.get(stroke.id);
    if (!p) return;
    p.confirmed = stroke.points.length;
    if (stroke.final || (p.ended && p.confirmed >= p.points.length)) this.pending.delete(stroke.id);
  }

  private reconcilePendingWithConfirmed(): void {
    for (const id of [...this.pending.keys()]) {
      const stroke = this.strokes.get(id);
      if (stroke) this.confirmPending(stroke);
    }
  }

  // ---- undo / redo choice ----

  /** This user's most recent stroke that is not undone (confirmed or pending), if any. */
  undoTarget(): string | null {
    const pendingIds = [...this.pending.keys()].filter((id) => !this.strokes.has(id));
    if (pendingIds.length > 0) return pendingIds[pendingIds.length - 1];
    for (let i = this.order.length - 1; i >= 0; i--) {
      const s = this.strokes.get(this.order[i]);
      if (s && s.author === this.userId && !s.deleted) return s.id;
    }
    return null;
  }

  redoTarget(): string | null {
    for (let i = this.redoStack.length - 1; i >= 0; i--) {
      const s = this.strokes.get(this.redoStack[i]);
      if (s?.deleted) return s.id;
    }
    return null;
  }

  // ---- presence (not ordered) ----

  applyPresence(userId: string, payload: PresencePayload, nowMs: number): Change[] {
    if (userId === this.userId) return NO_CHANGES;
    this.cursors.set(userId, {
      userId,
      cursor: payload.cursor ?? null,
      tool: payload.tool ?? null,
      status: payload.status ?? null,
      atMs: nowMs,
    });
    return [{ kind: "presence" }];
  }

  /** Forget cursors not refreshed within `ttlMs`. */
  expireCursors(nowMs: number, ttlMs: number): Change[] {
    let changed = false;
    for (const [id, c] of this.cursors) {
      if (nowMs - c.atMs > ttlMs) {
        this.cursors.delete(id);
        changed = true;
      }
    }
    return changed ? [{ kind: "presence" }] : NO_CHANGES;
  }

  displayName(userId: string): string {
    return this.participants.get(userId)?.name ?? userId;
  }

  latestScore(): Score | null {
    return this.scores.length ? this.scores[this.scores.length - 1] : null;
  }

  /** Layer props with defaults filled in. */
  layer(name: string): Required<Pick<LayerProps, "visible" | "opacity" | "z">> {
    const p = this.layers[name] ?? {};
    return { visible: p.visible ?? true, opacity: p.opacity ?? 1, z: p.z ?? 0 };
  }
}

function normalizeParticipant(p: SnapshotParticipant | string): Participant {
  if (typeof p === "string") return { userId: p, role: null, name: p, online: true };
  return {
    userId: p.user_id,
    role: p.role ?? null,
    name: p.name ?? p.user_id,
    online: p.state !== "left",
  };
}
