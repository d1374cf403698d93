"""The third floor for `bench fanout --sequenced`: the relay with an ordering process between
its gateway and the streams it fans out from, as any design with a session's single writer
apart from its gateways has.

The gateway (`stream_relay --sequenced`) appends each op to its room's inbox stream; this
process, one for every room, reads all the inboxes in one blocking `XREAD`, numbers each
room's entries and appends them to the room's log with id `<seq>-0`; the gateway's fan-out
loop reads the logs. The writes of one read go out with the next read in one send, on a
plain blocking socket (a RespSocket, as a session actor's inbox link). No Ray, no
validation, no state beyond a counter per room, and one process for all the rooms: the
least such a hop costs on this machine. Run: `python -m inkstep.bench.sequencer
--redis-url URL`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from inkstep.store.resp_socket import Command, RespSocket

ROOMS_STREAM = "relay:rooms"  # the gateway appends each new room's name here
READ_COUNT = 1000
BLOCK_MS = 5000
REPLY_TIMEOUT_S = 30.0


def inbox_stream(room: str) -> str:
    return f"relay:{{{room}}}:inbox"


def log_stream(room: str) -> str:
    """What the gateway fans out from (the plain relay's room stream)."""
    return f"relay:{{{room}}}"


class Sequencer:
    """Numbers every room's ops in inbox order and writes them to the room's log."""

    def __init__(self, redis_url: str) -> None:
        self.redis = RespSocket(redis_url, REPLY_TIMEOUT_S)
        # From the start of every stream: the relay gets a Redis of its own for each run.
        self.read_from: dict[str, str] = {ROOMS_STREAM: "0-0"}
        self.rooms: dict[str, str] = {}  # inbox stream -> room
        self.seqs: dict[str, int] = {}

    def run_forever(self) -> None:
        writes: list[Command] = []
        while True:
            writes = self.step(writes)

    def step(self, writes: list[Command]) -> list[Command]:
        """Send the last read's writes and the next read together; the next read's writes."""
        streams = list(self.read_from)
        read: Command = ("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS",
                         *streams, *(self.read_from[s] for s in streams))  # fmt: skip
        self.redis.send([*writes, read])
        for _ in writes:
            self.redis.reply()
        return self.decide(self.redis.reply())

    def decide(self, reply: Any) -> list[Command]:
        writes: list[Command] = []
        # RESP3 answers a map of stream to entries, RESP2 a list of [stream, entries].
        pairs = reply.items() if isinstance(reply, dict) else (reply or ())
        for stream, entries in pairs:
            name = stream.decode()
            self.read_from[name] = entries[-1][0].decode()
            if name == ROOMS_STREAM:
                for _, (_, room) in entries:
                    self._add_room(room.decode())
                continue
            room = self.rooms[name]
            for _, (_, op) in entries:
                self.seqs[room] += 1
                writes.append(("XADD", log_stream(room), f"{self.seqs[room]}-0", "m", op))
        return writes

    def _add_room(self, room: str) -> None:
        if inbox_stream(room) not in self.rooms:
            self.rooms[inbox_stream(room)] = room
            self.read_from[inbox_stream(room)] = "0-0"
            self.seqs[room] = 0


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sequencer process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit)
    Sequencer(args.redis_url).run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
