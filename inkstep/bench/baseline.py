"""The floor for `bench fanout --baseline`: a minimal in-process WebSocket broadcast server.

Rooms by session; every op is parsed, given the room's next seq and relayed to every member
(the sender too, as its confirmation) in inkstep's event layout. No Ray, Redis, validation or
state, so the bench client is the same for both servers. Run: `python -m inkstep.bench.baseline
--port P`. The hello token is `<room>:<user>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

STEP_ID = "s1"


@dataclass
class Room:
    """The members of one session and its last seq."""

    name: str
    members: set[ServerConnection] = field(default_factory=set)
    seq: int = 0

    def event(self, op: dict[str, Any], author: str) -> str:
        """The next ordered event for `op`, serialised once for every member."""
        self.seq += 1
        return json.dumps({
            "type": op.get("type"), "session_id": self.name, "seq": self.seq,
            "step_id": op.get("step_id", STEP_ID), "client_op_id": op.get("client_op_id"),
            "author": author, "ts_server": int(time.time() * 1000),
            "payload": op.get("payload", {}),
        }, separators=(",", ":"))  # fmt: skip


class BroadcastServer:
    """Joins connections to rooms and relays their ops."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}

    async def handle(self, ws: ServerConnection) -> None:
        """hello → welcome + empty snapshot, then relay every frame with a seq."""
        try:
            hello = json.loads(await ws.recv())
            room_name, _, user = str(hello.get("token", "")).partition(":")
        except (ConnectionClosed, ValueError):
            return
        room = await self.join(room_name)
        await ws.send(json.dumps(self._welcome(room, user)))
        await ws.send(json.dumps(self._snapshot(room)))
        room.members.add(ws)
        try:
            async for text in ws:
                op = json.loads(text)
                if op.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong", "t": op.get("t")}))
                    continue
                self.relay(room, op, user)
        except (ConnectionClosed, ValueError):
            pass
        finally:
            room.members.discard(ws)

    async def join(self, name: str) -> Room:
        """The room called `name`, made on its first hello."""
        return self.rooms.setdefault(name, Room(name))

    def relay(self, room: Room, op: dict[str, Any], author: str) -> None:
        """Send `op` to the room's members as its next event."""
        broadcast(room.members, room.event(op, author))

    @staticmethod
    def _welcome(room: Room, user: str) -> dict[str, Any]:
        return {"type": "welcome", "session_id": room.name, "user_id": user, "role": "student",
                "protocol": 1, "server_time": int(time.time() * 1000), "resume": "snapshot",
                "lesson_id": "baseline", "step_id": STEP_ID}  # fmt: skip

    @staticmethod
    def _snapshot(room: Room) -> dict[str, Any]:
        return {"type": "session_snapshot", "session_id": room.name, "seq": room.seq,
                "step_id": STEP_ID, "payload": {"strokes": [], "participants": [],
                                                "layers": {}, "scores": []}}  # fmt: skip


async def serve_until_signalled(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = BroadcastServer()
    async with serve(server.handle, host, port, max_size=None):
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the baseline server process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve_until_signalled(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
