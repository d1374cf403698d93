// A session: choose a role (or join as teacher when this browser created it), then the live canvas.

import { useCallback, useEffect, useMemo, useState } from "react";
import { useStore } from "zustand";
import { api, resolveWsUrl, type ApiError } from "../api";
import { createdSessions } from "../auth";
import { CanvasStack } from "../canvas/CanvasStack";
import type { PointerSink } from "../canvas/pointerInput";
import { watchWake } from "../connection";
import type { Lesson, Role } from "../protocol";
import { navigate, shareLink } from "../router";
import { SessionController } from "../sessionController";
import { exposeForTests } from "../testHooks";
import { ConnectionBadge, ParticipantsList, StepPanel, Toolbar } from "./SessionPanels";

type Phase = { kind: "loading" } | { kind: "choose" } | { kind: "joining" } | { kind: "live"; controller: SessionController };

export function SessionPage({ sessionId, roleParam }: { sessionId: string; roleParam: string | null }) {
  const [lesson, setLesson] = useState<Lesson | null>(null);
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  const [error, setError] = useState<string | null>(null);

  const join = useCallback(
    async (role: Role) => {
      setPhase({ kind: "joining" });
      setError(null);
      try {
        const answer = await api.join(sessionId, role);
        const controller = new SessionController({
          sessionId,
          role,
          wsUrl: resolveWsUrl(answer.ws_url),
          join: answer,
          rejoin: () => api.join(sessionId, role),
        });
        setPhase({ kind: "live", controller });
      } catch (err) {
        setError((err as ApiError).message);
        setPhase({ kind: "choose" });
      }
    },
    [sessionId],
  );

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const info = await api.session(sessionId);
        const l = await api.lesson(info.lesson_id);
        if (cancelled) return;
        setLesson(l);
        const wanted = roleParam ?? (createdSessions().has(sessionId) ? "teacher" : null);
        if (wanted === "teacher" || wanted === "student" || wanted === "viewer") void join(wanted);
        else setPhase({ kind: "choose" });
      } catch (err) {
        if (!cancelled) setError((err as ApiError).message);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [sessionId, roleParam, join]);

  if (error && phase.kind !== "choose") {
    return (
      <main className="page narrow">
        <p className="error" role="alert">{error}</p>
        <button onClick={() => navigate("/")}>Back to the lobby</button>
      </main>
    );
  }
  if (!lesson || phase.kind === "loading" || phase.kind === "joining") return <main className="page narrow">Loading…</main>;
  if (phase.kind === "choose") {
    return (
      <main className="page narrow">
        <h1>{lesson.title}</h1>
        <p>Join this session as…</p>
        <div className="row">
          <button data-testid="join-student" onClick={() => join("student")}>
            Student (draw)
          </button>
          <button data-testid="join-viewer" onClick={() => join("viewer")}>
            Viewer (watch)
          </button>
          <button data-testid="join-teacher" className="secondary" onClick={() => join("teacher")}>
            Teacher
          </button>
        </div>
        {error && <p className="error" role="alert">{error}</p>}
        <ShareLink sessionId={sessionId} />
      </main>
    );
  }
  return <LiveSession controller={phase.controller} lesson={lesson} sessionId={sessionId} />;
}

function ShareLink({ sessionId }: { sessionId: string }) {
  const link = shareLink(sessionId);
  return (
    <p className="share">
      Share: <input readOnly value={link} data-testid="share-link" onFocus={(e) => e.target.select()} size={link.length} />
      <button className="secondary" onClick={() => void navigator.clipboard?.writeText(link)}>
        Copy
      </button>
    </p>
  );
}

function LiveSession({ controller, lesson, sessionId }: { controller: SessionController; lesson: Lesson; sessionId: string }) {
  const view = useStore(controller.view);
  const [showReference, setShowReference] = useState(true);
  const [color, setColor] = useState(controller.style.color);
  const [width, setWidth] = useState(controller.style.width);

  useEffect(() => {
    controller.start();
    const unwatch = watchWake(controller.conn);
    const unexpose = exposeForTests(controller.model, controller.conn);
    return () => {
      unwatch();
      unexpose();
      controller.stop();
    };
  }, [controller]);

  useEffect(() => {
    controller.style = { ...controller.style, color, width };
  }, [controller, color, width]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
      if (!(e.ctrlKey || e.metaKey)) return;
      const key = e.key.toLowerCase();
      if (key === "z" && e.shiftKey) controller.redo();
      else if (key === "z") controller.undo();
      else if (key === "y") controller.redo();
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [controller]);

  const input = useMemo<PointerSink>(
    () => ({
      begin: (p) => controller.beginStroke(p),
      add: (ps) => controller.addPoints(ps),
      end: (p) => controller.endStroke(p),
      cursor: (xy) => controller.sendCursor(xy),
    }),
    [controller],
  );
  const subscribe = useCallback((l: Parameters<SessionController["subscribe"]>[0]) => controller.subscribe(l), [controller]);
  const step = lesson.steps.find((s) => s.id === view.stepId);
  const canDraw = controller.canDraw;

  return (
    <main className="session">
      <header className="topbar">
        <span>
          <a href="/" onClick={(e) => (e.preventDefault(), navigate("/"))}>
            inkstep
          </a>{" "}
          · <b>{lesson.title}</b> · you are {view.role ?? controller.role}
        </span>
        <ConnectionBadge state={view.connection} detail={view.connectionDetail} />
        {view.connection === "closed" && (
          <button data-testid="reconnect" onClick={() => controller.reconnect()}>
            Reconnect
          </button>
        )}
      </header>
      <div className="session-body">
        <div className="board">
          <Toolbar
            canDraw={canDraw}
            canUndo={view.canUndo}
            canRedo={view.canRedo}
            color={color}
            width={width}
            showReference={showReference}
            onUndo={() => controller.undo()}
            onRedo={() => controller.redo()}
            onColor={setColor}
            onWidth={setWidth}
            onToggleReference={() => setShowReference((v) => !v)}
          />
          <CanvasStack
            width={lesson.canvas.width}
            height={lesson.canvas.height}
            model={controller.model}
            subscribe={subscribe}
            reference={step?.reference ?? []}
            showReference={showReference}
            input={canDraw ? input : undefined}
            canDraw={canDraw}
          />
          {view.notice && (
            <p className="notice" key={view.notice.n} role="status">
              {view.notice.text}
            </p>
          )}
        </div>
        <aside>
          <StepPanel
            lesson={lesson}
            stepId={view.stepId}
            role={view.role ?? controller.role}
            score={view.latestScore}
            userName={(id) => controller.model.displayName(id)}
            onDone={() => controller.completeStep()}
            onChangeStep={(to) => controller.changeStep(to)}
          />
          <ParticipantsList participants={view.participants} me={view.userId} />
          <section className="card">
            <ShareLink sessionId={sessionId} />
            <a href={`/s/${encodeURIComponent(sessionId)}/replay`} data-testid="replay-link">
              Watch the replay
            </a>
          </section>
        </aside>
      </div>
    </main>
  );
}
