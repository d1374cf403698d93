// A minimal history-API router: the gateway serves index.html for every non-API path.

import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

export function navigate(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  window.history.pushState(null, "", path);
  for (const l of listeners) l();
}

export function useLocation(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname + window.location.search);
}

export type Route =
  | { page: "lobby" }
  | { page: "session"; sessionId: string; role: string | null }
  | { page: "replay"; sessionId: string }
  | { page: "missing" };

/** Which page a path shows. */
export function matchRoute(location: string): Route {
  const url = new URL(location, "http://x");
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "lobby" };
  if (parts[0] === "s" && parts.length === 2) {
    return { page: "session", sessionId: parts[1], role: url.searchParams.get("role") };
  }
  if (parts[0] === "s" && parts.length === 3 && parts[2] === "replay") return { page: "replay", sessionId: parts[1] };
  return { page: "missing" };
}

export function shareLink(sessionId: string): string {
  return `${window.location.origin}/s/${encodeURIComponent(sessionId)}`;
}
