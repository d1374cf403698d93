// The wire contract (shared/PROTOCOL.md, version 1) as TypeScript types.
// Client frames carry exactly the fields listed here: the server refuses unknown ones.

export const PROTOCOL_VERSION = 1;
export const MAX_POINTS_PER_BATCH = 512;

export type Role = "teacher" | "student" | "viewer";
export type Tool = "pen" | "pencil" | "brush" | "marker" | "highlighter" | "eraser";

/** [x, y, pressure 0..1, t_ms since the stroke began] in lesson canvas pixels. */
export type Point = [number, number, number, number];

export interface StrokeStyle {
  color: string;
  width: number;
  tool: Tool;
}

export interface StrokePayload {
  stroke_id: string;
  layer: string;
  points: Point[];
  style: StrokeStyle;
  final: boolean;
}

export interface LayerProps {
  visible?: boolean;
  opacity?: number;
  z?: number;
  name?: string;
  locked?: boolean;
}

// ---- client → server ----

export interface HelloFrame {
  type: "hello";
  token: string;
  last_seq: number | null;
  client: string;
}

export interface StrokeAppendOp {
  type: "stroke_append";
  client_op_id: string;
  step_id: string;
  payload: StrokePayload;
}

export interface UndoOp {
  type: "undo";
  client_op_id: string;
  payload: { target: string };
}

export interface RedoOp {
  type: "redo";
  client_op_id: string;
  payload: { target: string };
}

export interface LayerSetOp {
  type: "layer_set";
  client_op_id: string;
  payload: { layer: string; props: LayerProps };
}

export interface StepCompleteOp {
  type: "step_complete";
  client_op_id: string;
  step_id: string;
}

export interface StepChangeOp {
  type: "step_change";
  client_op_id: string;
  payload: { to_step: string };
}

/** Ops that the server orders and confirms with a seq'd event. */
export type ClientOp = StrokeAppendOp | UndoOp | RedoOp | LayerSetOp | StepCompleteOp | StepChangeOp;

export interface PresencePayload {
  cursor: [number, number] | null;
  tool?: string | null;
  status?: string | null;
}

export interface PresenceOut {
  type: "presence";
  payload: PresencePayload;
}

export interface PingFrame {
  type: "ping";
  t: number;
}

export type ClientFrame = HelloFrame | ClientOp | PresenceOut | PingFrame;

// ---- server → client ----

export interface WelcomeFrame {
  type: "welcome";
  session_id: string;
  user_id: string;
  role: Role;
  protocol: number;
  server_time: number | string;
  resume: "tail" | "snapshot";
  lesson_id: string;
  step_id: string;
}

interface EventBase<T extends string, P> {
  type: T;
  session_id: string;
  seq: number;
  step_id: string;
  client_op_id: string | null;
  author: string;
  ts_server: number;
  payload: P;
}

export interface ScorePayload {
  user_id: string;
  step_id: string;
  accuracy: number;
  quality: number;
  passed: boolean;
  details: Record<string, unknown>;
}

export interface ParticipantPayload {
  user_id: string;
  role: Role;
  state: "joined" | "left";
  name?: string;
}

export type StrokeAppendEvent = EventBase<"stroke_append", StrokePayload>;
export type UndoEvent = EventBase<"undo", { target: string }>;
export type RedoEvent = EventBase<"redo", { target: string }>;
export type LayerSetEvent = EventBase<"layer_set", { layer: string; props: LayerProps }>;
export type StepChangeEvent = EventBase<
  "step_change",
  { from_step: string; to_step: string; reason: string }
>;
export type ScoreUpdateEvent = EventBase<"score_update", ScorePayload>;
export type ParticipantEvent = EventBase<"participant", ParticipantPayload>;

export type KnownEvent =
  | StrokeAppendEvent
  | UndoEvent
  | RedoEvent
  | LayerSetEvent
  | StepChangeEvent
  | ScoreUpdateEvent
  | ParticipantEvent;

/** Any seq'd event; types this client does not know are kept only for their seq. */
export type OrderedEvent = KnownEvent | EventBase<string, unknown>;

export interface SnapshotStroke {
  stroke_id: string;
  author: string;
  step_id: string;
  layer: string;
  style: StrokeStyle;
  points: Point[];
  final: boolean;
  deleted: boolean;
}

export interface SnapshotParticipant {
  user_id: string;
  role?: Role;
  name?: string;
  state?: string;
}

export interface SessionSnapshot {
  type: "session_snapshot";
  session_id: string;
  seq: number;
  step_id: string;
  payload: {
    lesson?: unknown;
    participants?: Array<SnapshotParticipant | string>;
    layers?: Record<string, LayerProps>;
    strokes?: SnapshotStroke[];
    scores?: ScorePayload[];
  };
}

export interface PresenceIn {
  type: "presence";
  user_id: string;
  payload: PresencePayload;
}

export interface AckFrame {
  type: "ack";
  client_op_id: string;
  seq: number;
  duplicate?: boolean;
}

export type ErrorCode = "invalid" | "forbidden" | "rate_limited" | "too_large" | "unavailable";

export interface ErrorFrame {
  type: "error";
  code: ErrorCode | string;
  message: string;
  client_op_id: string | null;
}

export interface PongFrame {
  type: "pong";
  t: number;
  /** The newest seq the gateway had queued for this client before the pong. */
  last_seq?: number;
}

export type ServerFrame =
  | WelcomeFrame
  | SessionSnapshot
  | PresenceIn
  | AckFrame
  | ErrorFrame
  | PongFrame
  | OrderedEvent;

/** Close codes after which reconnecting with the same credentials cannot help. */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([4401, 4403, 4404]);

export const CLOSE_REASONS: Readonly<Record<number, string>> = {
  4400: "bad hello",
  4401: "session token is invalid or expired",
  4403: "forbidden",
  4404: "no such session",
  4408: "no hello in time",
  4409: "fell too far behind",
  4429: "rate limit abuse",
  1009: "frame too large",
  1011: "server error",
  1012: "gateway restarting",
};

const UNORDERED = new Set(["welcome", "session_snapshot", "presence", "ack", "error", "pong"]);

/** True for frames that carry a session seq and must be applied in order. */
export function isOrderedEvent(frame: { type: string; seq?: unknown }): frame is OrderedEvent {
  return !UNORDERED.has(frame.type) && typeof frame.seq === "number";
}

// ---- lessons (REST) ----

export type Shape =
  | { kind: "line"; x1: number; y1: number; x2: number; y2: number }
  | { kind: "polyline"; points: Array<[number, number]>; closed?: boolean }
  | { kind: "circle"; cx: number; cy: number; r: number }
  | { kind: "ellipse"; cx: number; cy: number; rx: number; ry: number; angle_deg?: number };

export interface LessonStep {
  id: string;
  title: string;
  instruction: string;
  reference?: Shape[];
  tolerance_px?: number;
}

export interface Lesson {
  id: string;
  title: string;
  required_plan: "free" | "pro" | string;
  canvas: { width: number; height: number };
  steps: LessonStep[];
}
