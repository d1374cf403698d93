// Sign in: by name when the server allows local sign-in, otherwise with a pasted identity-provider token.

import { useEffect, useState, type FormEvent } from "react";
import { api } from "../api";
import { jwtSubject, saveAuth, type UserAuth } from "../auth";

export function SignIn({ onSignedIn }: { onSignedIn(auth: UserAuth): void }) {
  const [local, setLocal] = useState<boolean | null>(null);
  const [name, setName] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.config().then(
      (c) => setLocal(c.local_sign_in),
      () => setLocal(false),
    );
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      let auth: UserAuth;
      if (local && name.trim()) {
        const answer = await api.signInLocal(name.trim());
        auth = { token: answer.token, userId: answer.user_id, name: name.trim() };
      } else {
        const sub = jwtSubject(token.trim());
        if (!sub) throw new Error("That does not look like a token from the identity provider (no subject).");
        auth = { token: token.trim(), userId: sub, name: sub };
        await api.lessons().catch((err: Error) => {
          throw new Error(`The server did not accept this token: ${err.message}`);
        });
      }
      saveAuth(auth);
      onSignedIn(auth);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (local === null) return <main className="page narrow">Loading…</main>;
  return (
    <main className="page narrow">
      <h1>inkstep</h1>
      <p>Drawing lessons, together, in real time.</p>
      <form onSubmit={submit} className="card">
        {local ? (
          <label>
            Your name
            <input data-testid="signin-name" value={name} onChange={(e) => setName(e.target.value)} autoFocus maxLength={64} />
          </label>
        ) : (
          <label>
            Token from your identity provider
            <textarea data-testid="signin-token" value={token} onChange={(e) => setToken(e.target.value)} rows={4} />
          </label>
        )}
        <button data-testid="signin-submit" type="submit" disabled={busy || (local ? !name.trim() : !token.trim())}>
          Sign in
        </button>
        {error && <p className="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}
