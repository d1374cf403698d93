// The side panels of a live session: connection, steps and score, participants, tools.

import type { ConnectionState } from "../connection";
import type { Lesson, Role } from "../protocol";
import type { Participant, Score } from "../sessionModel";
import { colorFor } from "../canvas/cursorLayer";
import { detailRows } from "../scoreDetails";

export function ConnectionBadge({ state, detail }: { state: ConnectionState; detail: string }) {
  const label = state === "open" ? "Connected" : state === "connecting" ? "Reconnecting…" : "Disconnected";
  return (
    <span className={`connection ${state}`} data-testid="connection" data-state={state} title={detail}>
      <span className="dot" /> {label}
      {state !== "open" && detail && <small> ({detail})</small>}
    </span>
  );
}

export interface StepPanelProps {
  lesson: Lesson;
  stepId: string | null;
  role: Role | null;
  score: Score | null;
  userName(userId: string): string;
  onDone(): void;
  onChangeStep(to: string): void;
}

export function StepPanel({ lesson, stepId, role, score, userName, onDone, onChangeStep }: StepPanelProps) {
  const index = lesson.steps.findIndex((s) => s.id === stepId);
  const step = index >= 0 ? lesson.steps[index] : null;
  const prev = index > 0 ? lesson.steps[index - 1] : null;
  const next = index >= 0 && index + 1 < lesson.steps.length ? lesson.steps[index + 1] : null;
  return (
    <section className="card step-panel">
      <small>
        Step {index + 1} of {lesson.steps.length}
      </small>
      <h2 data-testid="step-title">{step?.title ?? "…"}</h2>
      <p data-testid="step-instruction">{step?.instruction}</p>
      {role !== "viewer" && (
        <button data-testid="step-done" onClick={onDone} disabled={!step}>
          Done — score this step
        </button>
      )}
      {role === "teacher" && (
        <div className="row">
          <button data-testid="step-prev" disabled={!prev} onClick={() => prev && onChangeStep(prev.id)}>
            ← Previous step
          </button>
          <button data-testid="step-next" disabled={!next} onClick={() => next && onChangeStep(next.id)}>
            Next step →
          </button>
        </div>
      )}
      {score && <ScoreCard score={score} lesson={lesson} userName={userName} />}
    </section>
  );
}

function ScoreCard({ score, lesson, userName }: { score: Score; lesson: Lesson; userName(id: string): string }) {
  const stepTitle = lesson.steps.find((s) => s.id === score.step_id)?.title ?? score.step_id;
  const rows = detailRows(score.details);
  return (
    <div className={`score ${score.passed ? "passed" : "failed"}`}>
      <div data-testid="score" data-accuracy={score.accuracy} data-quality={score.quality}>
        <b>{userName(score.user_id)}</b> on “{stepTitle}”: accuracy {Math.round(score.accuracy)}, quality{" "}
        {Math.round(score.quality)}
      </div>
      <div data-testid="score-passed" data-passed={String(score.passed)}>
        {score.passed ? "✔ Passed" : "✘ Not passed yet — try again"}
      </div>
      {rows.length > 0 && (
        <table className="details">
          <tbody>
            {rows.map(([label, value]) => (
              <tr key={label}>
                <th>{label}</th>
                <td>{value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function ParticipantsList({ participants, me }: { participants: Participant[]; me: string | null }) {
  return (
    <section className="card">
      <h3>People here</h3>
      <ul data-testid="participants" className="participants">
        {participants.map((p) => (
          <li key={p.userId} data-user-id={p.userId}>
            <span className="swatch" style={{ background: colorFor(p.userId) }} /> {p.name}
            {p.userId === me && " (you)"} {p.role && <small>{p.role}</small>}
          </li>
        ))}
      </ul>
    </section>
  );
}

const COLORS = ["#1f2933", "#d7263d", "#1b998b", "#2e86ab", "#f46036", "#8e44ad"];

export interface ToolbarProps {
  canDraw: boolean;
  canUndo: boolean;
  canRedo: boolean;
  color: string;
  width: number;
  showReference: boolean;
  onUndo(): void;
  onRedo(): void;
  onColor(c: string): void;
  onWidth(w: number): void;
  onToggleReference(): void;
}

export function Toolbar(p: ToolbarProps) {
  return (
    <div className="toolbar row">
      {p.canDraw && (
        <>
          <button data-testid="undo" onClick={p.onUndo} disabled={!p.canUndo} title="Undo (Ctrl+Z)">
            ↶ Undo
          </button>
          <button data-testid="redo" onClick={p.onRedo} disabled={!p.canRedo} title="Redo (Ctrl+Shift+Z)">
            ↷ Redo
          </button>
          <span className="swatches">
            {COLORS.map((c) => (
              <button
                key={c}
                className={`swatch-btn${c === p.color ? " selected" : ""}`}
                style={{ background: c }}
                aria-label={`colour ${c}`}
                data-testid={`color-${c.slice(1)}`}
                onClick={() => p.onColor(c)}
              />
            ))}
          </span>
          <label>
            Width{" "}
            <input
              type="range"
              min={1}
              max={30}
              value={p.width}
              data-testid="width"
              onChange={(e) => p.onWidth(Number(e.target.value))}
            />
          </label>
        </>
      )}
      <label>
        <input type="checkbox" data-testid="reference-toggle" checked={p.showReference} onChange={p.onToggleReference} />{" "}
        Guide
      </label>
    </div>
  );
}
