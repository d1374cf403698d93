// Replay of a session: its event log played back at 1× or 4×, with a scrubber.

import { useCallback, useEffect, useRef, useState } from "react";
import { api, type ApiError } from "../api";
import { CanvasStack } from "../canvas/CanvasStack";
import type { Lesson } from "../protocol";
import { navigate } from "../router";
import { ReplayPlayer } from "../replayPlayer";
import type { Change } from "../sessionModel";
import { exposeForTests } from "../testHooks";

export function ReplayPage({ sessionId }: { sessionId: string }) {
  const [lesson, setLesson] = useState<Lesson | null>(null);
  const [player, setPlayer] = useState<ReplayPlayer | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const info = await api.session(sessionId);
        const [l, events] = await Promise.all([api.lesson(info.lesson_id), api.replay(sessionId)]);
        if (!cancelled) {
          setLesson(l);
          setPlayer(new ReplayPlayer(events));
        }
      } catch (err) {
        if (!cancelled) setError((err as ApiError).message);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [sessionId]);

  if (error) {
    return (
      <main className="page narrow">
        <p className="error" role="alert">{error}</p>
        <button onClick={() => navigate("/")}>Back to the lobby</button>
      </main>
    );
  }
  if (!lesson || !player) return <main className="page narrow">Loading the replay…</main>;
  return <ReplayView lesson={lesson} player={player} sessionId={sessionId} />;
}

function ReplayView({ lesson, player, sessionId }: { lesson: Lesson; player: ReplayPlayer; sessionId: string }) {
  const [timeMs, setTimeMs] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const [model, setModel] = useState(player.model);
  const [stepId, setStepId] = useState(player.model.stepId);
  const listeners = useRef(new Set<(c: readonly Change[]) => void>());
  const timeRef = useRef(0);

  const subscribe = useCallback((l: (c: readonly Change[]) => void) => {
    listeners.current.add(l);
    return () => listeners.current.delete(l);
  }, []);

  const seek = useCallback(
    (ms: number) => {
      const t = Math.max(0, Math.min(player.durationMs, ms));
      timeRef.current = t;
      setTimeMs(t);
      const { changes, rebuilt } = player.seek(t);
      if (rebuilt) setModel(player.model);
      else for (const l of listeners.current) l(changes);
      setStepId(player.model.stepId);
    },
    [player],
  );

  useEffect(() => exposeForTests(model, null), [model]);
  useEffect(() => seek(0), [seek]);

  useEffect(() => {
    if (!playing) return;
    let last = performance.now();
    let raf = 0;
    const tick = (now: number) => {
      const next = timeRef.current + (now - last) * speed;
      last = now;
      seek(next);
      if (next >= player.durationMs) setPlaying(false);
      else raf = requestAnimationFrame(tick);
    };
    raf = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(raf);
  }, [playing, speed, seek, player]);

  const step = lesson.steps.find((s) => s.id === stepId);
  const play = () => {
    if (timeRef.current >= player.durationMs) seek(0);
    setPlaying((p) => !p);
  };
  return (
    <main className="session">
      <header className="topbar">
        <span>
          <a href="/" onClick={(e) => (e.preventDefault(), navigate("/"))}>
            inkstep
          </a>{" "}
          · Replay of <b>{lesson.title}</b> ({player.events.length} events) ·{" "}
          <a href={`/s/${encodeURIComponent(sessionId)}`}>back to the session</a>
        </span>
        <span data-testid="step-title">{step?.title ?? ""}</span>
      </header>
      <div className="board">
        <div className="toolbar row">
          <button data-testid="replay-play" onClick={play}>
            {playing ? "Pause" : "Play"}
          </button>
          {[1, 4].map((s) => (
            <button key={s} data-testid={`replay-speed-${s}`} className={speed === s ? "selected" : "secondary"} onClick={() => setSpeed(s)}>
              {s}×
            </button>
          ))}
          <input
            type="range"
            data-testid="replay-scrubber"
            min={0}
            max={Math.max(1, player.durationMs)}
            step={10}
            value={timeMs}
            onChange={(e) => seek(Number(e.target.value))}
            style={{ flex: 1 }}
          />
          <span>
            {formatMs(timeMs)} / {formatMs(player.durationMs)}
          </span>
        </div>
        <CanvasStack
          width={lesson.canvas.width}
          height={lesson.canvas.height}
          model={model}
          subscribe={subscribe}
          reference={step?.reference ?? []}
          showReference
        />
      </div>
    </main>
  );
}

function formatMs(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
