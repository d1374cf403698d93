// `window.__inkstep`: a read-only window into the session for browser tests.

import type { Connection } from "./connection";
import type { SessionModel } from "./sessionModel";

export interface InkstepTestHooks {
  lastSeq(): number;
  /** Confirmed strokes that are not undone. */
  strokeCount(): number;
  state(): Record<string, unknown>;
}

declare global {
  interface Window {
    __inkstep?: InkstepTestHooks;
  }
}

export function exposeForTests(model: SessionModel, conn: Connection | null): () => void {
  const hooks: InkstepTestHooks = {
    lastSeq: () => model.lastSeq,
    strokeCount: () => model.strokeCount(),
    state: () => ({
      connection: conn?.state ?? "closed",
      userId: model.userId,
      role: model.role,
      sessionId: model.sessionId,
      stepId: model.stepId,
      lastSeq: model.lastSeq,
      strokes: model.order.length,
      liveStrokes: model.strokeCount(),
      pendingStrokes: model.pending.size,
      unconfirmedOps: conn?.unconfirmed().length ?? 0,
      participants: [...model.participants.values()].filter((p) => p.online).map((p) => p.userId),
      scores: model.scores.length,
    }),
  };
  window.__inkstep = hooks;
  return () => {
    if (window.__inkstep === hooks) delete window.__inkstep;
  };
}
