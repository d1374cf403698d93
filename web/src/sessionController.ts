// One live session on this page: the model, the connection, the stroke batcher and the
// view store wired together. The pages and canvases call its methods; it owns no DOM.

import { expiresAtMs, type JoinAnswer } from "./api";
import { Connection, type SocketFactory } from "./connection";
import { nextOpId } from "./opId";
import type { ClientOp, Point, Role, StrokeStyle } from "./protocol";
import { SessionModel, type Change } from "./sessionModel";
import { createSessionViewStore, viewFromModel, type SessionViewStore } from "./sessionStore";
import { StrokeBatcher } from "./strokeBatcher";

export const DEFAULT_LAYER = "ink";
const PRESENCE_INTERVAL_MS = 50; // at most 20 cursor updates per second
const CURSOR_TTL_MS = 15_000;
const TOKEN_MARGIN_MS = 30_000;

export interface ControllerOptions {
  sessionId: string;
  role: Role;
  wsUrl: string;
  join: JoinAnswer;
  /** Ask the server for a fresh session token (the join call again). */
  rejoin(): Promise<JoinAnswer>;
  socketFactory?: SocketFactory;
}

type Listener = (changes: readonly Change[]) => void;

export class SessionController {
  readonly model = new SessionModel();
  readonly view: SessionViewStore = createSessionViewStore();
  readonly conn: Connection;
  readonly role: Role;
  style: StrokeStyle = { color: "#1f2933", width: 4, tool: "pen" };
  private readonly listeners = new Set<Listener>();
  private readonly batcher: StrokeBatcher;
  private readonly opStroke = new Map<string, string>();
  private currentStroke: string | null = null;
  private join: JoinAnswer;
  private presenceTimer: ReturnType<typeof setTimeout> | null = null;
  private presenceSentAt = 0;
  private nextCursor: [number, number] | null | undefined = undefined;
  private cursorSweep: ReturnType<typeof setInterval> | null = null;
  private noticeCount = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.role = opts.role;
    this.join = opts.join;
    this.batcher = new StrokeBatcher({ nextOpId, emit: (op) => this.sendOp(op) });
    this.conn = new Connection({
      url: opts.wsUrl,
      getToken: () => this.validToken(),
      getLastSeq: () => this.model.resumeSeq(),
      socketFactory: opts.socketFactory,
      handlers: {
        onWelcome: (w) => this.publish(this.model.applyWelcome(w)),
        onSnapshot: (s) => this.publish(this.model.applySnapshot(s)),
        onEvent: (ev) => {
          const outcome = this.model.applyEvent(ev);
          if (outcome.changes.length) this.publish(outcome.changes);
          return outcome.result;
        },
        onPresence: (p) => this.publish(this.model.applyPresence(p.user_id, p.payload, Date.now())),
        onOpRejected: (op, err) => {
          const strokeId = this.opStroke.get(op.client_op_id);
          if (strokeId) this.publish(this.model.dropPending(strokeId));
          this.notify(`${op.type} refused: ${err.message}`);
        },
        onServerError: (err) => this.notify(err.message),
        onState: (state, detail) => this.view.setState({ connection: state, connectionDetail: detail }),
      },
    });
  }

  start(): void {
    this.conn.start();
    this.cursorSweep = setInterval(() => this.publish(this.model.expireCursors(Date.now(), CURSOR_TTL_MS)), 2_000);
  }

  /** Start again after the server closed the connection for good (e.g. an expired token): with a fresh token. */
  reconnect(): void {
    this.join = { ...this.join, expires_at: 0 };
    this.conn.start();
  }

  stop(): void {
    if (this.batcher.active) this.batcher.end(null);
    this.conn.stop();
    if (this.cursorSweep) clearInterval(this.cursorSweep);
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get canDraw(): boolean {
    return this.role !== "viewer";
  }

  // ---- drawing ----

  beginStroke(point: Point): void {
    const stepId = this.model.stepId;
    if (!this.canDraw || !stepId) return;
    const strokeId = this.batcher.begin(stepId, DEFAULT_LAYER, { ...this.style }, point);
    this.currentStroke = strokeId;
    this.publish(this.model.beginPending(strokeId, stepId, DEFAULT_LAYER, { ...this.style }, [point]));
  }

  addPoints(points: Point[]): void {
    if (!this.currentStroke || points.length === 0) return;
    this.batcher.add(points);
    this.publish(this.model.addPendingPoints(this.currentStroke, points));
  }

  endStroke(point: Point | null): void {
    if (!this.currentStroke) return;
    this.batcher.end(point);
    this.publish(this.model.addPendingPoints(this.currentStroke, point ? [point] : [], true));
    this.currentStroke = null;
  }

  // ---- ops ----

  undo(): void {
    const target = this.model.undoTarget();
    if (this.canDraw && target) this.sendOp({ type: "undo", client_op_id: nextOpId(), payload: { target } });
  }

  redo(): void {
    const target = this.model.redoTarget();
    if (this.canDraw && target) this.sendOp({ type: "redo", client_op_id: nextOpId(), payload: { target } });
  }

  completeStep(): void {
    const stepId = this.model.stepId;
    if (this.canDraw && stepId) this.sendOp({ type: "step_complete", client_op_id: nextOpId(), step_id: stepId });
  }

  changeStep(toStep: string): void {
    if (this.role === "teacher") {
      this.sendOp({ type: "step_change", client_op_id: nextOpId(), payload: { to_step: toStep } });
    }
  }

  /** Share this user's cursor (null when it leaves the canvas), at most 20 times a second. */
  sendCursor(cursor: [number, number] | null): void {
    if (!this.canDraw) return;
    this.nextCursor = cursor;
    if (this.presenceTimer) return;
    const wait = Math.max(0, this.presenceSentAt + PRESENCE_INTERVAL_MS - Date.now());
    this.presenceTimer = setTimeout(() => this.flushCursor(), wait);
  }

  private flushCursor(): void {
    this.presenceTimer = null;
    if (this.nextCursor === undefined) return;
    const cursor = this.nextCursor;
    this.nextCursor = undefined;
    this.presenceSentAt = Date.now();
    this.conn.sendVolatile({ cursor: cursor ? [round1(cursor[0]), round1(cursor[1])] : null, tool: this.style.tool });
  }

  private sendOp(op: ClientOp): void {
    if (op.type === "stroke_append") this.opStroke.set(op.client_op_id, op.payload.stroke_id);
    this.conn.send(op);
  }

  private async validToken(): Promise<string> {
    if (expiresAtMs(this.join.expires_at) - Date.now() < TOKEN_MARGIN_MS) this.join = await this.opts.rejoin();
    return this.join.token;
  }

  private notify(text: string): void {
    this.view.setState({ notice: { text, n: ++this.noticeCount } });
  }

  private publish(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) listener(changes);
    if (changes.some((c) => c.kind === "meta" || c.kind === "reset" || c.kind === "redraw")) {
      this.view.setState(viewFromModel(this.model));
    }
  }
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}
