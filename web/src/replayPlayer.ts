// Playback of a session's event log: a timeline of the events (long idle gaps shortened),
// and a model brought to any point of it — forward by applying events, backward by rebuilding.

import type { OrderedEvent } from "./protocol";
import { SessionModel, type Change } from "./sessionModel";

/** Gaps between events longer than this play as this long. */
export const MAX_GAP_MS = 2_000;

export class ReplayPlayer {
  readonly events: OrderedEvent[];
  /** Playback time of each event, ms from the start. */
  readonly times: number[];
  model = new SessionModel();
  /** Events applied so far. */
  applied = 0;

  constructor(events: OrderedEvent[]) {
    this.events = [...events].sort((a, b) => a.seq - b.seq);
    this.times = timeline(this.events);
    this.rewind();
  }

  get durationMs(): number {
    return this.times.length ? this.times[this.times.length - 1] : 0;
  }

  /** Bring the model to playback time `ms`; `rebuilt` tells that the model was replaced. */
  seek(ms: number): { changes: Change[]; rebuilt: boolean } {
    const target = countAtOrBefore(this.times, ms);
    let rebuilt = false;
    if (target < this.applied) {
      this.rewind();
      rebuilt = true;
    }
    const changes: Change[] = [];
    while (this.applied < target) {
      const outcome = this.model.applyEvent(this.events[this.applied++]);
      for (const c of outcome.changes) changes.push(c);
    }
    return { changes, rebuilt };
  }

  private rewind(): void {
    this.model = new SessionModel();
    this.applied = 0;
    if (this.events.length) {
      this.model.lastSeq = this.events[0].seq - 1;
      this.model.stepId = this.events[0].step_id;
    }
  }
}

/** Playback times: real gaps between events, each at most MAX_GAP_MS. */
export function timeline(events: readonly OrderedEvent[]): number[] {
  const times: number[] = [];
  let t = 0;
  for (let i = 0; i < events.length; i++) {
    if (i > 0) {
      const gap = (events[i].ts_server ?? 0) - (events[i - 1].ts_server ?? 0);
      t += Math.min(MAX_GAP_MS, Math.max(0, Number.isFinite(gap) ? gap : 0));
    }
    times.push(t);
  }
  return times;
}

/** How many of the sorted `times` are ≤ `ms`. */
export function countAtOrBefore(times: readonly number[], ms: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] <= ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
