// The Zustand store the React pages read: a small view of the session model that changes
// only when something shown in the panels changes (never per point or per cursor move).

import { createStore, type StoreApi } from "zustand/vanilla";
import type { ConnectionState } from "./connection";
import type { Role } from "./protocol";
import type { Participant, Score, SessionModel } from "./sessionModel";

export interface SessionView {
  connection: ConnectionState;
  connectionDetail: string;
  userId: string | null;
  role: Role | null;
  stepId: string | null;
  strokeCount: number;
  participants: Participant[];
  latestScore: Score | null;
  canUndo: boolean;
  canRedo: boolean;
  /** The last refusal or error worth showing, with a counter so repeats are visible. */
  notice: { text: string; n: number } | null;
}

export type SessionViewStore = StoreApi<SessionView>;

export function createSessionViewStore(): SessionViewStore {
  return createStore<SessionView>(() => ({
    connection: "connecting",
    connectionDetail: "connecting",
    userId: null,
    role: null,
    stepId: null,
    strokeCount: 0,
    participants: [],
    latestScore: null,
    canUndo: false,
    canRedo: false,
    notice: null,
  }));
}

/** The parts of the view that come from the model. */
export function viewFromModel(model: SessionModel): Partial<SessionView> {
  const participants = [...model.participants.values()]
    .filter((p) => p.online)
    .sort((a, b) => a.name.localeCompare(b.name));
  const drawing = model.role === "teacher" || model.role === "student";
  return {
    userId: model.userId,
    role: model.role,
    stepId: model.stepId,
    strokeCount: model.strokeCount(),
    participants,
    latestScore: model.latestScore(),
    canUndo: drawing && model.undoTarget() !== null,
    canRedo: drawing && model.redoTarget() !== null,
  };
}
