"""Stopping a deployment politely: every live session checkpoints before Ray stops."""

from __future__ import annotations

import logging

import ray

logger = logging.getLogger(__name__)


def live_session_actors() -> list[str]:
    """Names of the session actors and session hosts alive in the current namespace."""
    names: list[str] = ray.util.list_named_actors()
    return [name for name in names if name.startswith(("session:", "sessions:"))]


def checkpoint_all_sessions(timeout_s: float = 20.0) -> int:
    """Ask each session actor and host to checkpoint and exit; answers how many did."""
    refs: list[ray.ObjectRef[None]] = []
    for name in live_session_actors():
        try:
            refs.append(ray.get_actor(name).shutdown.remote())
        except ValueError:
            continue
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s) if refs else ([], [])
    stopped = 0
    for ref in done:
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError:
            stopped += 1  # exiting is how shutdown() answers
    logger.info("checkpointed %s of %s sessions", stopped, len(refs))  # hosts count as one
    return stopped
