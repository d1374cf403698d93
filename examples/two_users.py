"""Two users draw in one session and see each other's strokes (run `make run` first).

.venv/bin/python examples/two_users.py [--url http://127.0.0.1:8765]
"""

from __future__ import annotations

import argparse
import asyncio
import math

from inkstep.client import InkstepApi, InkstepClient
from inkstep.settings import Settings
from inkstep.tokens import mint_user_token


def circle(cx: float, cy: float, r: float, n: int = 60) -> list[list[float]]:
    return [
        [
            cx + r * math.cos(2 * math.pi * i / n),
            cy + r * math.sin(2 * math.pi * i / n),
            0.5,
            i * 16.0,
        ]
        for i in range(n + 1)
    ]


async def main(url: str) -> None:
    settings = Settings()  # the same data dir as `inkstep serve`, so the same signing secret
    ada, ben = mint_user_token(settings, "ada"), mint_user_token(settings, "ben")
    async with InkstepApi(url, ada) as api:
        session = await api.create_session("circles-101")
        ws_url, ada_session = await api.join(session["session_id"], "teacher")
    async with InkstepApi(url, ben) as api:
        _, ben_session = await api.join(session["session_id"], "student")
    print(f"session {session['session_id']}: open {url}/s/{session['session_id']} to watch")

    async with InkstepClient(ws_url, ada_session) as a, InkstepClient(ws_url, ben_session) as b:
        stroke = await a.draw_stroke(circle(400, 300, 150))
        seq = await a.wait_confirmed(stroke)
        await b.wait_seq(seq)
        points = len(b.strokes[stroke]["points"])
        print(f"ben sees ada's stroke {stroke} as event {seq}: {points} points")
        reply = await b.draw_stroke([[250.0 + 10 * i, 300.0, 0.5, i * 16.0] for i in range(31)])
        await a.wait_seq(await b.wait_confirmed(reply))
        print(f"ada sees ben's stroke {reply}; both hold {len(a.strokes)} strokes")
        await a.wait_confirmed(await a.undo(stroke))
        await b.wait_seq(a.last_seq or 0)
        print(f"ada undid her circle; on ben's side deleted={b.strokes[stroke]['deleted']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8765")
    asyncio.run(main(parser.parse_args().url))
