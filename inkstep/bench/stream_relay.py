"""The second floor for `bench fanout --relay`: a minimal gateway that fans out through Redis.

The baseline's rooms and event layout, but every op goes through a Redis stream on its way
to the members, as in a gateway that relays through a stream: the op is appended to its
room's stream (`XADD`, pipelined, in the tick it arrived) and one blocking `XREAD` loop over
every room's stream numbers the entries in stream order and sends each to the room. No Ray,
no session actor, no validation, no state: what a design with a Redis stream on the path
costs on this machine, before inkstep's own work. With `--sequenced` the op goes to its room's
inbox instead, and a sequencer process (`inkstep.bench.sequencer`) numbers it into the stream
the loop reads. Run: `python -m inkstep.bench.stream_relay --port P --redis-url URL
[--sequenced]`. The hello token is `<room>:<user>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

import orjson
from websockets.asyncio.server import serve

from inkstep.bench import sequencer
from inkstep.bench.baseline import BroadcastServer, Room
from inkstep.store.errors import StoreError
from inkstep.store.pipe import RedisPipe
from inkstep.store.streams import entry_fields

logger = logging.getLogger(__name__)

WAKE_STREAM = "relay:wake"
READ_COUNT = 1000


class StreamRelayServer(BroadcastServer):
    """Relays each op through its room's Redis stream to the room's members."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.writes = RedisPipe(redis_url)
        self.reads = RedisPipe(redis_url)  # the blocking read holds its connection
        # From the start of every stream: the relay gets a Redis of its own for each run.
        self.read_from: dict[str, str] = {WAKE_STREAM: "0-0"}

    async def join(self, name: str) -> Room:
        if name not in self.rooms:
            self.rooms[name] = Room(name)
            self.read_from[sequencer.log_stream(name)] = "0-0"
            # Interrupt the blocking read so that the next one includes the new stream.
            await self.writes.call("XADD", WAKE_STREAM, "*", "wake", "1")
        return self.rooms[name]

    def relay(self, room: Room, op: dict[str, Any], author: str) -> None:
        """Append the op to its room's stream; the fan-out loop sends it on."""
        entry = orjson.dumps({"op": op, "author": author})
        written = self.writes.call("XADD", self.ops_stream(room.name), "*", "m", entry)
        written.add_done_callback(_log_failed_write)

    def ops_stream(self, room: str) -> str:
        """Where an op of the room goes: the stream the fan-out loop reads."""
        return sequencer.log_stream(room)

    async def relay_forever(self) -> None:
        """The fan-out loop: read every room's new entries, number them, send them."""
        while True:
            try:
                await self._relay_once()
            except StoreError as exc:
                logger.warning("relay read failed: %s", exc)
                await asyncio.sleep(0.5)

    async def _relay_once(self) -> None:
        streams = list(self.read_from)
        reply = await self.reads.call("XREAD", "COUNT", READ_COUNT, "BLOCK", 5000, "STREAMS",
                                      *streams, *(self.read_from[s] for s in streams))  # fmt: skip
        for stream, entries in reply or ():
            name = stream.decode()
            self.read_from[name] = entries[-1][0].decode()
            if name == WAKE_STREAM:
                continue
            room = self.rooms[name[len("relay:{") : -1]]
            for _, flat in entries:
                relayed = orjson.loads(entry_fields(flat)[b"m"])
                super().relay(room, relayed["op"], relayed["author"])  # to the members


class SequencedRelayServer(StreamRelayServer):
    """Each op goes to its room's inbox; the sequencer numbers it into the room's stream."""

    async def join(self, name: str) -> Room:
        if name not in self.rooms:
            await self.writes.call("XADD", sequencer.ROOMS_STREAM, "*", "room", name)
        return await super().join(name)

    def ops_stream(self, room: str) -> str:
        return sequencer.inbox_stream(room)


def _log_failed_write(written: asyncio.Future[object]) -> None:
    if not written.cancelled() and (error := written.exception()) is not None:
        logger.warning("relay write failed: %s", error)


async def serve_until_signalled(host: str, port: int, redis_url: str, sequenced: bool) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = (SequencedRelayServer if sequenced else StreamRelayServer)(redis_url)
    relay = asyncio.create_task(server.relay_forever())
    try:
        async with serve(server.handle, host, port, max_size=None):
            await stop.wait()
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await server.writes.close()
        await server.reads.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the relay server process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sequenced", action="store_true",
                        help="ops reach the fan-out through inkstep.bench.sequencer")  # fmt: skip
    args = parser.parse_args(argv)
    asyncio.run(serve_until_signalled(args.host, args.port, args.redis_url, args.sequenced))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
