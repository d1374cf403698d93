import { describe, expect, it } from "vitest";
import { countAtOrBefore, MAX_GAP_MS, ReplayPlayer, timeline } from "./replayPlayer";
import { stroke, undo } from "./test/events";
import { parseNdjson } from "./api";

describe("replay", () => {
  it("shortens long idle gaps in the timeline", () => {
    const events = [stroke(1, "a"), stroke(2, "b"), stroke(3, "c")];
    events[1].ts_server = events[0].ts_server + 60_000;
    events[2].ts_server = events[1].ts_server + 500;
    expect(timeline(events)).toEqual([0, MAX_GAP_MS, MAX_GAP_MS + 500]);
  });

  it("counts events at or before a time", () => {
    expect(countAtOrBefore([0, 100, 100, 300], 100)).toBe(3);
    expect(countAtOrBefore([0, 100], -1)).toBe(0);
    expect(countAtOrBefore([0, 100], 1_000)).toBe(2);
  });

  it("plays forward incrementally and rebuilds when seeking back", () => {
    const text = [stroke(1, "a"), stroke(2, "b"), undo(3, "a")].map((e) => JSON.stringify(e)).join("\n") + "\n";
    const player = new ReplayPlayer(parseNdjson(text));
    expect(player.durationMs).toBe(200);
    expect(player.seek(100)).toMatchObject({ rebuilt: false });
    expect(player.model.strokeCount()).toBe(2);
    player.seek(200);
    expect(player.model.strokeCount()).toBe(1);
    const back = player.seek(0);
    expect(back.rebuilt).toBe(true);
    expect(player.model.order).toEqual(["a"]);
  });

  it("starts from the first seq it has", () => {
    const player = new ReplayPlayer([stroke(5, "x"), stroke(6, "y")]);
    player.seek(10_000);
    expect(player.model.order).toEqual(["x", "y"]);
  });
});
