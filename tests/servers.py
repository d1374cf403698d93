"""Real gateway processes for tests: `inkstep gateway` against the session's services."""

from __future__ import annotations

import os
import time
from pathlib import Path

from inkstep.gateway_process import GatewayProcess

__all__ = ["TEST_NAMESPACE", "TEST_SECRET", "GatewayProcess", "gateway_env", "wait_until"]

TEST_SECRET = "inkstep-test-secret-0123456789abcdef"
TEST_NAMESPACE = "inkstep-tests"  # the Ray namespace of the test gateways and their sessions


def wait_until(predicate: object, timeout_s: float = 10.0, interval_s: float = 0.05) -> None:
    """Poll `predicate()` until true; AssertionError on timeout."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def gateway_env(
    redis_url: str, database_url: str, ray_address: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "INKSTEP_REDIS_URL": redis_url,
        "INKSTEP_DATABASE_URL": database_url,
        "INKSTEP_RAY_ADDRESS": ray_address,
        "INKSTEP_RAY_NAMESPACE": TEST_NAMESPACE,
        "INKSTEP_DATA_DIR": str(data_dir),
        "INKSTEP_SECRET_KEY": TEST_SECRET,
        "INKSTEP_LOCAL_SIGN_IN": "true",
        **extra,
    })  # fmt: skip
    return env
