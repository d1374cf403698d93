// The lobby: lessons (locked ones with their plan), creating a session, opening a shared one.

import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError } from "../api";
import { rememberCreated, type UserAuth } from "../auth";
import type { Lesson } from "../protocol";
import { navigate } from "../router";

export function Lobby({ auth, onSignOut }: { auth: UserAuth; onSignOut(): void }) {
  const [lessons, setLessons] = useState<Lesson[] | null>(null);
  const [locked, setLocked] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [joinId, setJoinId] = useState("");

  useEffect(() => {
    api.lessons().then(setLessons, (err: ApiError) => {
      setError(err.message);
      if (err.status === 401) onSignOut();
    });
  }, [onSignOut]);

  const create = async (lesson: Lesson) => {
    setBusy(lesson.id);
    setError(null);
    try {
      const created = await api.createSession(lesson.id);
      rememberCreated(created.session_id);
      navigate(`/s/${encodeURIComponent(created.session_id)}`);
    } catch (err) {
      const e = err as ApiError;
      if (e.status === 403) setLocked((m) => ({ ...m, [lesson.id]: e.message }));
      else setError(e.message);
    } finally {
      setBusy(null);
    }
  };

  const open = (e: FormEvent) => {
    e.preventDefault();
    const id = sessionIdFrom(joinId);
    if (id) navigate(`/s/${encodeURIComponent(id)}`);
  };

  return (
    <main className="page">
      <header className="topbar">
        <h1>inkstep</h1>
        <span>
          Signed in as <b>{auth.name}</b>{" "}
          <button className="link" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      <section>
        <h2>Lessons</h2>
        {lessons === null && !error && <p>Loading…</p>}
        <ul className="lessons">
          {lessons?.map((lesson) => (
            <li key={lesson.id} className={`card lesson${locked[lesson.id] ? " locked" : ""}`} data-testid={`lesson-${lesson.id}`}>
              <h3>
                {lesson.title} {lesson.required_plan !== "free" && <span className="badge">{lesson.required_plan}</span>}
              </h3>
              <ol className="steps">
                {lesson.steps.map((s) => (
                  <li key={s.id}>{s.title}</li>
                ))}
              </ol>
              {locked[lesson.id] ? (
                <p className="locked-note" data-testid={`locked-${lesson.id}`}>
                  🔒 Needs the {lesson.required_plan} plan. {locked[lesson.id]}
                </p>
              ) : (
                <button data-testid={`create-session-${lesson.id}`} disabled={busy !== null} onClick={() => create(lesson)}>
                  {busy === lesson.id ? "Creating…" : "Start a session (as teacher)"}
                </button>
              )}
            </li>
          ))}
        </ul>
      </section>
      <section>
        <h2>Join a session</h2>
        <form onSubmit={open} className="row">
          <input
            data-testid="join-session-input"
            placeholder="Session link or id"
            value={joinId}
            onChange={(e) => setJoinId(e.target.value)}
          />
          <button data-testid="join-session-open" type="submit" disabled={!sessionIdFrom(joinId)}>
            Open
          </button>
        </form>
      </section>
    </main>
  );
}

/** A session id from a pasted share link (`…/s/<id>`) or a bare id. */
export function sessionIdFrom(text: string): string | null {
  const t = text.trim();
  if (!t) return null;
  const m = /\/s\/([^/?#]+)/.exec(t);
  return m ? decodeURIComponent(m[1]) : t;
}
