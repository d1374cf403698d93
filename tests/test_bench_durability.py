"""The durability benches end to end on the session's Redis, Postgres and Ray: they check
behaviour (the actor came back, nothing lost or duplicated), never timings."""

from __future__ import annotations

import argparse
import json
from types import ModuleType
from typing import Any

import pytest

from inkstep.bench import chaos, recovery


def run_bench(
    module: ModuleType, capsys: pytest.CaptureFixture[str], services: list[str], *argv: str
) -> tuple[int, dict[str, Any]]:
    """Parse `argv` as `inkstep bench <name>` would, run it with --json; (exit code, figures)."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args([*argv, *services, "--json"])
    capsys.readouterr()
    code: int = module.run(args)
    out = capsys.readouterr().out
    # Ray may print its own warnings (e.g. about worker processes) to the driver's stdout.
    result: dict[str, Any] = json.loads(out[out.index("{\n") :])
    return code, result


@pytest.fixture
def services(redis_url: str, database_url: str, ray_address: str) -> list[str]:
    """The test session's services, as bench options."""
    return ["--redis-url", redis_url, "--database-url", database_url,
            "--ray-address", ray_address]  # fmt: skip


def test_recovery_bench_times_a_kill_and_loses_nothing(
    capsys: pytest.CaptureFixture[str], services: list[str]
) -> None:
    code, result = run_bench(recovery, capsys, services, "--events", "200", "--runs", "1")
    assert code == 0, result
    assert result["recovered"] is True
    [run] = result["runs"]
    assert run["pid_killed"] > 0
    assert run["recovered_s"] is not None and run["recovered_s"] > 0
    assert run["seq_at_kill"] > 200
    assert result["confirmed"] > 200  # the history and the probes
    assert (result["lost"], result["duplicated"], result["seq_gaps"]) == (0, 0, 0)


def test_chaos_bench_loses_and_duplicates_nothing(
    capsys: pytest.CaptureFixture[str], services: list[str]
) -> None:
    # Fewer clients than the bench's default keep the test short; the faults are the same.
    code, result = run_bench(
        chaos, capsys, services, "--duration", "12", "--sessions", "3", "--clients", "3"
    )
    assert code == 0, result
    assert result["ok"] is True
    assert result["actor_kills"] >= 1
    assert result["gateway_restart"]["down_s"] > 0
    assert result["confirmed"] == result["sent"] > 0
    assert result["unconfirmed_at_end"] == 0
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert (result["seq_gaps"], result["repeated_seqs"], result["seq_mismatch"]) == (0, 0, 0)
