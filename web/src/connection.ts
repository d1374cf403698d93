// The WebSocket client: hello with last_seq, heartbeats, reconnect with backoff and jitter,
// resume after gaps, and resending unconfirmed ops with their original client_op_id.

import {
  CLOSE_REASONS,
  FATAL_CLOSE_CODES,
  isOrderedEvent,
  type AckFrame,
  type ClientFrame,
  type ClientOp,
  type ErrorFrame,
  type OrderedEvent,
  type PongFrame,
  type PresenceIn,
  type PresencePayload,
  type SessionSnapshot,
  type WelcomeFrame,
} from "./protocol";
import type { ApplyResult } from "./sessionModel";

export type ConnectionState = "connecting" | "open" | "closed";

/** The part of the browser WebSocket this client uses (a test can supply its own). */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface ConnectionHandlers {
  onWelcome?(w: WelcomeFrame): void;
  onSnapshot?(s: SessionSnapshot): void;
  /** Apply one ordered event; "gap" makes the connection resume from the last applied seq. */
  onEvent(ev: OrderedEvent): ApplyResult;
  onPresence?(p: PresenceIn): void;
  /** The server refused an op; it has been dropped from the resend queue. */
  onOpRejected?(op: ClientOp, err: ErrorFrame): void;
  onServerError?(err: ErrorFrame): void;
  onState?(state: ConnectionState, detail: string): void;
}

export interface ConnectionOptions {
  url: string;
  /** A valid session token; called before every connect so it can be refreshed. */
  getToken(): Promise<string>;
  /** last_seq for hello: null asks for a snapshot. */
  getLastSeq(): number | null;
  handlers: ConnectionHandlers;
  socketFactory?: SocketFactory;
  now?: () => number;
  random?: () => number;
  clientName?: string;
  pingIntervalMs?: number;
  silenceTimeoutMs?: number;
  welcomeTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  retryUnavailableMs?: number;
  /** False only when the browser knows it has no network (navigator.onLine). */
  isOnline?: () => boolean;
}

const OPEN = 1;

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, half of it jittered. */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

export class Connection {
  private readonly opts: Required<Omit<ConnectionOptions, "handlers" | "getToken" | "getLastSeq" | "url">> &
    ConnectionOptions;
  private socket: SocketLike | null = null;
  private _state: ConnectionState = "connecting";
  private stopped = true;
  private welcomed = false;
  private attempt = 0;
  private userId: string | null = null;
  private lastFrameAt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private welcomeTimer: ReturnType<typeof setTimeout> | null = null;
  /** Ops sent (or waiting to be sent) and not yet confirmed, in send order. */
  private readonly outbox = new Map<string, ClientOp>();
  private generation = 0;
  private offline = false;

  constructor(options: ConnectionOptions) {
    this.opts = {
      socketFactory: (url: string) => new WebSocket(url) as unknown as SocketLike,
      now: () => Date.now(),
      random: Math.random,
      clientName: "inkstep-web/0.1",
      pingIntervalMs: 10_000,
      silenceTimeoutMs: 30_000,
      welcomeTimeoutMs: 10_000,
      backoffBaseMs: 500,
      backoffMaxMs: 10_000,
      retryUnavailableMs: 1_000,
      isOnline: () => typeof navigator === "undefined" || navigator.onLine !== false,
      ...definedOnly(options),
    };
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Ops not yet confirmed by the server, oldest first. */
  unconfirmed(): ClientOp[] {
    return [...this.outbox.values()];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.dropSocket(1000, "client leaving");
    this.setState("closed", "stopped");
  }

  /** Queue an ordered op; it is sent now if connected and resent after every reconnect until confirmed. */
  send(op: ClientOp): void {
    this.outbox.set(op.client_op_id, op);
    if (this.isReady()) this.write(op);
  }

  /** Send a frame that is not worth keeping (presence): dropped when not connected. */
  sendVolatile(payload: PresencePayload): void {
    if (this.isReady()) this.write({ type: "presence", payload });
  }

  /** Reconnect now and resume from the last applied seq (after a gap, a wake-up, going online). */
  resume(reason: string): void {
    if (this.stopped) return;
    this.dropSocket(4000, reason);
    // The first resume is immediate; repeated ones without progress back off.
    const delay = this.attempt === 0 ? 0 : this.nextDelay();
    if (this.attempt === 0) this.attempt = 1;
    this.scheduleReconnect(delay, reason);
  }

  /** The browser lost the network: drop the link and wait for `wake()` instead of retrying blindly. */
  goOffline(): void {
    if (this.stopped) return;
    this.offline = true;
    this.dropSocket(4000, "offline");
    this.setState("connecting", "offline");
  }

  /** The page woke up or came online: check the link at once instead of waiting for timers. */
  wake(): void {
    if (this.stopped || !this.opts.isOnline()) return;
    this.offline = false;
    if (this.socket && !this.welcomed) return; // a handshake is already under way
    if (!this.isReady()) {
      this.attempt = 0;
      this.resume("wake");
      return;
    }
    const silentFor = this.opts.now() - this.lastFrameAt;
    if (silentFor > this.opts.pingIntervalMs + 2_000) this.resume("stale after wake");
    else this.write({ type: "ping", t: this.opts.now() });
  }

  private isReady(): boolean {
    return this.welcomed && this.socket !== null && this.socket.readyState === OPEN;
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setState("connecting", this.attempt === 0 ? "connecting" : `retry ${this.attempt}`);
    let token: string;
    try {
      token = await this.opts.getToken();
    } catch (err) {
      if (generation === this.generation && !this.stopped) this.retryLater(`token: ${String(err)}`);
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    const socket = this.opts.socketFactory(this.opts.url);
    this.socket = socket;
    this.welcomed = false;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.lastFrameAt = this.opts.now();
      const hello: ClientFrame = {
        type: "hello",
        token,
        last_seq: this.opts.getLastSeq(),
        client: this.opts.clientName,
      };
      socket.send(JSON.stringify(hello));
      this.welcomeTimer = setTimeout(() => this.resume("no welcome"), this.opts.welcomeTimeoutMs);
    };
    socket.onmessage = (ev) => {
      if (socket === this.socket) this.onMessage(ev.data);
    };
    socket.onclose = (ev) => {
      if (socket === this.socket) this.onClose(ev.code, ev.reason);
    };
    socket.onerror = () => {
      // A close event always follows; the reconnect decision is made there.
    };
  }

  private onMessage(data: unknown): void {
    this.lastFrameAt = this.opts.now();
    let frame: { type?: unknown; [key: string]: unknown };
    try {
      frame = JSON.parse(String(data));
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(frame as unknown as WelcomeFrame);
      case "session_snapshot":
        return this.opts.handlers.onSnapshot?.(frame as unknown as SessionSnapshot);
      case "presence":
        return this.opts.handlers.onPresence?.(frame as unknown as PresenceIn);
      case "ack":
        return this.onAck(frame as unknown as AckFrame);
      case "error":
        return this.onError(frame as unknown as ErrorFrame);
      case "pong": {
        this.attempt = 0;
        // Everything up to last_seq was queued before the pong: being behind now means lost events.
        const serverSeq = (frame as unknown as PongFrame).last_seq ?? 0;
        if (serverSeq > (this.opts.getLastSeq() ?? 0)) this.resume(`behind the server (seq ${serverSeq})`);
        return;
      }
      default:
        if (isOrderedEvent(frame as { type: string; seq?: unknown })) this.onOrdered(frame as unknown as OrderedEvent);
    }
  }

  private onWelcome(w: WelcomeFrame): void {
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.welcomeTimer = null;
    this.welcomed = true;
    this.userId = w.user_id;
    this.opts.handlers.onWelcome?.(w);
    this.startHeartbeat();
    this.setState("open", w.resume);
    // Same client_op_ids as before: the server applies each op at most once.
    for (const op of this.outbox.values()) this.write(op);
  }

  private onOrdered(ev: OrderedEvent): void {
    const result = this.opts.handlers.onEvent(ev);
    if (result === "gap") {
      this.resume(`gap before seq ${ev.seq}`);
      return;
    }
    if (result === "applied") this.attempt = 0; // the link makes progress again
    if (ev.client_op_id && opOwner(ev) === this.userId) this.outbox.delete(ev.client_op_id);
  }

  private onAck(ack: AckFrame): void {
    this.outbox.delete(ack.client_op_id);
  }

  private onError(err: ErrorFrame): void {
    const op = err.client_op_id ? this.outbox.get(err.client_op_id) : undefined;
    if (!op) {
      this.opts.handlers.onServerError?.(err);
      return;
    }
    if (err.code === "unavailable") {
      // Nothing was applied: try the same op again shortly.
      setTimeout(() => {
        if (this.outbox.has(op.client_op_id) && this.isReady()) this.write(op);
      }, this.opts.retryUnavailableMs);
      return;
    }
    this.outbox.delete(op.client_op_id);
    this.opts.handlers.onOpRejected?.(op, err);
  }

  private onClose(code: number, reason: string): void {
    this.socket = null;
    this.welcomed = false;
    this.clearTimers();
    if (this.stopped) return;
    const why = CLOSE_REASONS[code] ?? (reason || `closed (${code})`);
    if (FATAL_CLOSE_CODES.has(code)) {
      this.stopped = true;
      this.setState("closed", why);
      return;
    }
    this.retryLater(why);
  }

  private retryLater(why: string): void {
    this.scheduleReconnect(this.nextDelay(), why);
  }

  private nextDelay(): number {
    const { backoffBaseMs, backoffMaxMs, random } = this.opts;
    return backoffDelayMs(this.attempt++, backoffBaseMs, backoffMaxMs, random());
  }

  private scheduleReconnect(delayMs: number, why: string): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.setState("connecting", why);
    if (this.offline) return; // wake() reconnects when the network is back
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) void this.connect();
    }, delayMs);
  }

  private startHeartbeat(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.opts.now() - this.lastFrameAt > this.opts.silenceTimeoutMs) {
        this.resume("no frame from the server");
        return;
      }
      if (this.isReady()) this.write({ type: "ping", t: this.opts.now() });
    }, this.opts.pingIntervalMs);
  }

  private write(frame: ClientFrame): void {
    try {
      this.socket?.send(JSON.stringify(frame));
    } catch {
      // The close event that follows decides what to do.
    }
  }

  private dropSocket(code: number, reason: string): void {
    const socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    this.generation++;
    this.clearTimers();
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.reconnectTimer = this.pingTimer = this.welcomeTimer = null;
  }

  private setState(state: ConnectionState, detail: string): void {
    this._state = state;
    this.opts.handlers.onState?.(state, detail);
  }
}

/** The options that are set: an explicit `undefined` must not hide a default. */
function definedOnly<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}

/** Whose op an event confirms: a score_update is authored by the server for the scored user. */
function opOwner(ev: OrderedEvent): string {
  if (ev.type === "score_update") {
    const user = (ev.payload as { user_id?: unknown } | null)?.user_id;
    if (typeof user === "string") return user;
  }
  return ev.author;
}

/** Reconnect promptly when the browser comes back online or the tab becomes visible (e.g. after sleep). */
export function watchWake(conn: Connection, win: Window = window, doc: Document = document): () => void {
  const onOnline = () => conn.wake();
  const onOffline = () => conn.goOffline();
  const onVisible = () => {
    if (doc.visibilityState === "visible") conn.wake();
  };
  win.addEventListener("online", onOnline);
  win.addEventListener("offline", onOffline);
  win.addEventListener("focus", onVisible);
  doc.addEventListener("visibilitychange", onVisible);
  return () => {
    win.removeEventListener("online", onOnline);
    win.removeEventListener("offline", onOffline);
    win.removeEventListener("focus", onVisible);
    doc.removeEventListener("visibilitychange", onVisible);
  };
}
