"""The session actor's interpreter policy (collector, GIL switch interval): in a fresh
interpreter (it changes global state), and in a live session's actor."""

from __future__ import annotations

import subprocess
import sys

from actors.session_actor import GIL_SWITCH_INTERVAL_S
from tests.helpers import connect, new_session, session_actor, unique
from tests.servers import GatewayProcess

SCRIPT = """
import gc, sys
from actors.session_actor import _tune_interpreter
_tune_interpreter()
gc.collect()
frozen_before = gc.get_freeze_count()
points = [[float(i), 1.0] for i in range(5_000)]  # a session's long-lived small objects
gc.collect(0)
print(gc.get_threshold()[0], gc.get_freeze_count() - frozen_before, len(gc.get_objects(1)),
      sys.getswitchinterval())
"""


def test_what_survives_a_young_collection_is_frozen_and_never_rescanned() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    young, newly_frozen, middle_generation, switch_s = result.stdout.split()
    assert float(switch_s) == GIL_SWITCH_INTERVAL_S < 0.005  # shorter than CPython's default
    assert int(young) == 2_000
    assert int(newly_frozen) >= 5_000  # every point list survived, out of the collector's way
    assert int(middle_generation) == 0  # nothing waits for the next middle collection


async def test_a_live_session_actor_runs_with_that_policy(gateways: list[GatewayProcess]) -> None:
    """Through a real session: nothing in the actor's start-up overrides the policy."""
    gw = gateways[0]
    user = unique("ann")
    session_id = await new_session(gw.url, user)
    client = await connect(gw.ws_url, gw.url, user, session_id, "teacher")
    try:
        actor = session_actor(session_id)
        interpreter = await actor.interpreter.remote()
    finally:
        await client.close()
    assert interpreter["gil_switch_interval_s"] == GIL_SWITCH_INTERVAL_S
    assert interpreter["gc_threshold"][0] == 2_000
