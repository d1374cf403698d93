// The signed-in user: a bearer token from the identity provider (or local sign-in), kept in localStorage.

const KEY = "inkstep.user";

export interface UserAuth {
  token: string;
  userId: string;
  name: string;
}

export function loadAuth(): UserAuth | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const v = JSON.parse(raw) as Partial<UserAuth>;
    return v.token && v.userId ? { token: v.token, userId: v.userId, name: v.name ?? v.userId } : null;
  } catch {
    return null;
  }
}

export function saveAuth(auth: UserAuth): void {
  localStorage.setItem(KEY, JSON.stringify(auth));
}

export function clearAuth(): void {
  localStorage.removeItem(KEY);
}

/** The `sub` claim of a JWT, read without verifying (the server verifies). */
export function jwtSubject(token: string): string | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

const CREATED_KEY = "inkstep.created";

/** Sessions this browser created: their creator joins them as teacher. */
export function rememberCreated(sessionId: string): void {
  const all = createdSessions();
  all.add(sessionId);
  localStorage.setItem(CREATED_KEY, JSON.stringify([...all].slice(-50)));
}

export function createdSessions(): Set<string> {
  try {
    return new Set(JSON.parse(localStorage.getItem(CREATED_KEY) ?? "[]") as string[]);
  } catch {
    return new Set();
  }
}
