"""Pacing: background work that takes at most a share of one core, however long it runs.

A checkpoint costs ~100 ms of CPU for a 4000-event session, in a few calls of 10-40 ms each.
Run flat out on a 2-core machine, it takes a whole core from the ops of every session for that
long; measured with 10 busy sessions, p99 was 6-9 ms without checkpoints and 8-25 ms with
them. Resting between small pieces of the work keeps the CPU it takes per second small, so it
mostly uses what the ops leave free: with a checkpoint every 500 events, p99 20.0-39.5 ms and
max 57-93 ms paced, against 25.7-48.8 and 119-122 ms flat out (three pairs of runs). What it
cannot split is the Doc's encode, one call that holds the GIL (~15 ms per 4000 events).
"""

from __future__ import annotations

import time

# The share of one core a paced job may take, measured over its whole run so far.
CHECKPOINT_CPU_SHARE = 0.2
# A rest is never longer than this, so a job that had a long piece does not stall for long.
LONGEST_REST_S = 0.25


class Pacer:
    """Call `rest()` between pieces of work; it sleeps as long as the thread's CPU time since
    the pacer was made asks for. One pacer per job, used by one thread."""

    def __init__(self, cpu_share: float) -> None:
        if not 0 < cpu_share <= 1:
            raise ValueError(f"cpu_share must be in (0, 1], got {cpu_share}")
        self.cpu_share = cpu_share
        self._cpu_at_start = time.thread_time()
        self._wall_at_start = time.monotonic()
        self.rested_s = 0.0

    def rest(self) -> None:
        if self.cpu_share >= 1:
            return  # a whole core: never owed (the clocks' granularity would say otherwise)
        used = time.thread_time() - self._cpu_at_start
        elapsed = time.monotonic() - self._wall_at_start
        owed = used / self.cpu_share - elapsed
        if owed > 0:
            pause = min(owed, LONGEST_REST_S)
            time.sleep(pause)
            self.rested_s += pause
