import { describe, expect, it } from "vitest";
import { expiresAtMs, parseNdjson, resolveWsUrl } from "./api";
import { matchRoute } from "./router";

describe("REST helpers", () => {
  it("resolves a ws_url path against the page and keeps absolute URLs", () => {
    expect(resolveWsUrl("/v1/ws", new URL("http://host:8000/s/abc"))).toBe("ws://host:8000/v1/ws");
    expect(resolveWsUrl("/v1/ws", new URL("https://host/s/abc"))).toBe("wss://host/v1/ws");
    expect(resolveWsUrl("ws://other:9/v1/ws", new URL("https://host/"))).toBe("ws://other:9/v1/ws");
  });

  it("reads expires_at as ISO text, seconds or milliseconds", () => {
    expect(expiresAtMs("2030-01-01T00:00:00Z")).toBe(Date.UTC(2030, 0, 1));
    expect(expiresAtMs(1_900_000_000)).toBe(1_900_000_000_000);
    expect(expiresAtMs(1_900_000_000_000)).toBe(1_900_000_000_000);
    expect(expiresAtMs("1900000000")).toBe(1_900_000_000_000);
  });

  it("parses NDJSON, skipping blank lines", () => {
    expect(parseNdjson('{"seq":1}\n\n{"seq":2}\n').map((e) => e.seq)).toEqual([1, 2]);
  });
});

describe("routes", () => {
  it("maps paths to pages", () => {
    expect(matchRoute("/")).toEqual({ page: "lobby" });
    expect(matchRoute("/s/abc-1")).toEqual({ page: "session", sessionId: "abc-1", role: null });
    expect(matchRoute("/s/abc?role=viewer")).toEqual({ page: "session", sessionId: "abc", role: "viewer" });
    expect(matchRoute("/s/abc/replay")).toEqual({ page: "replay", sessionId: "abc" });
    expect(matchRoute("/nope/x/y")).toEqual({ page: "missing" });
  });
});
