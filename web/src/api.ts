// REST calls to the gateway (same origin). Errors carry the server's message.

import { loadAuth } from "./auth";
import type { Lesson, OrderedEvent, Role } from "./protocol";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  const bearer = token ?? loadAuth()?.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the server: ${String(err)}`);
  }
  const text = await res.text();
  if (!res.ok) throw errorFrom(res.status, text);
  return (text ? JSON.parse(text) : null) as T;
}

function errorFrom(status: number, text: string): ApiError {
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    if (e?.message) return new ApiError(status, e.code ?? "error", e.message);
  } catch {
    // not JSON
  }
  return new ApiError(status, "http", `${status}: ${text.slice(0, 200) || "request failed"}`);
}

export interface Config {
  local_sign_in: boolean;
}

export interface JoinAnswer {
  token: string;
  ws_url: string;
  expires_at: string | number;
}

export interface SessionInfo {
  session_id: string;
  lesson_id: string;
  step_id: string;
  last_seq: number;
  participants: unknown[];
}

export const api = {
  config: () => request<Config>("GET", "/v1/config"),
  signInLocal: (name: string) => request<{ token: string; user_id: string }>("POST", "/v1/auth/local", { name }),
  lessons: () => request<Lesson[]>("GET", "/v1/lessons"),
  lesson: (id: string) => request<Lesson>("GET", `/v1/lessons/${encodeURIComponent(id)}`),
  createSession: (lessonId: string) =>
    request<{ session_id: string; lesson_id: string; step_id: string }>("POST", "/v1/sessions", { lesson_id: lessonId }),
  join: (sessionId: string, role: Role) =>
    request<JoinAnswer>("POST", `/v1/sessions/${encodeURIComponent(sessionId)}/join`, { role }),
  session: (sessionId: string) => request<SessionInfo>("GET", `/v1/sessions/${encodeURIComponent(sessionId)}`),
  results: (sessionId: string) => request<unknown[]>("GET", `/v1/sessions/${encodeURIComponent(sessionId)}/results`),
  replay: async (sessionId: string): Promise<OrderedEvent[]> => {
    const text = await requestText(`/v1/sessions/${encodeURIComponent(sessionId)}/replay`);
    return parseNdjson(text);
  },
};

async function requestText(path: string): Promise<string> {
  const token = loadAuth()?.token;
  const res = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  if (!res.ok) throw errorFrom(res.status, text);
  return text;
}

/** One JSON object per non-empty line. */
export function parseNdjson(text: string): OrderedEvent[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as OrderedEvent);
}

/** The WebSocket URL for a join answer's ws_url (a path or an absolute ws:// URL). */
export function resolveWsUrl(wsUrl: string, base: Location | URL = window.location): string {
  const url = new URL(wsUrl, base.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url.toString();
}

/** Milliseconds since the epoch for an `expires_at` given as ISO text, seconds or milliseconds. */
export function expiresAtMs(value: string | number): number {
  if (typeof value === "number") return value < 1e12 ? value * 1000 : value;
  const asNumber = Number(value);
  if (Number.isFinite(asNumber)) return expiresAtMs(asNumber);
  const parsed = Date.parse(value);
  return Number.isFinite(parsed) ? parsed : Date.now() + 60_000;
}
