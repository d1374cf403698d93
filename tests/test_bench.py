"""The benches run end to end against a real gateway; they check behaviour, never timings."""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
from types import ModuleType

import pytest

from inkstep.bench import checkpoint, fanout, join, scoring
from tests.servers import TEST_SECRET, GatewayProcess


def bench_args(module: ModuleType, *argv: str) -> argparse.Namespace:
    """Parse `argv` with the bench's own options, as `inkstep bench <name>` would."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def gateway(gateways: list[GatewayProcess], monkeypatch: pytest.MonkeyPatch) -> GatewayProcess:
    """The first test gateway, with its signing secret where the benches look for it."""
    monkeypatch.setenv("INKSTEP_SECRET_KEY", TEST_SECRET)
    return gateways[0]


def test_fanout_delivers_every_op_in_order(gateway: GatewayProcess) -> None:
    args = bench_args(fanout, "--url", gateway.url, "--sessions", "1", "--clients", "2",
                      "--rate", "5", "--duration", "2", "--relay", "--sequenced",
                      "--baseline")  # fmt: skip
    result = fanout.measure(args)
    servers = ["inkstep", "relay", "sequenced", "baseline"]
    assert [row["server"] for row in result["rows"]] == servers
    for row in result["rows"]:
        assert row["sent"] > 0
        assert row["received_by_others"] == row["sent"]  # two clients: one other each
        assert row["lost"] == 0
        assert row["out_of_order"] == 0
        assert row["refused"] == 0
        assert row["errors"] == {}
        assert row["over_p99"]["sessions"] == 1
        assert row["over_p99"]["sessions_per_second_max"] <= 1
    assert result["rows"][0]["server_cpu_percent"] is None  # no --server-pid to sample
    assert result["rows"][1]["server_processes"] == 2  # the relay and its Redis
    assert result["rows"][2]["server_processes"] == 3  # ... and the sequencer
    assert result["rows"][3]["server_cpu_percent"] is not None
    assert set(result["p99_ratios"]) == set(servers[1:])


def test_fanout_starts_its_server_with_the_session_hosts_asked_for() -> None:
    assert fanout.server_env(bench_args(fanout)) == {"INKSTEP_SESSION_HOSTS": "0"}
    hosted = bench_args(fanout, "--session-hosts", "2")
    assert fanout.server_env(hosted) == {"INKSTEP_SESSION_HOSTS": "2"}


def test_each_delivery_counts_in_the_second_of_the_run_it_was_sent_in() -> None:
    totals = fanout.Totals(start_at=100.7, end_at=102.7)  # a 2 s run
    tracker = fanout.SessionTracker(totals, clients=2, name="g0s0")
    for op_id, sent_at in [("a", 100.9), ("b", 101.8), ("c", 102.69), ("late", 102.75)]:
        tracker.sent(op_id, sent_at)
        tracker.received(op_id, "other", sent_at + 0.01)
    assert totals.sent_seconds == [0, 1, 1, 1]


def test_the_tail_spread_counts_sessions_hit_per_second() -> None:
    one_generator = {"latencies_ms": [1.0, 50.0, 60.0, 2.0, 70.0],
                     "sent_seconds": [10, 10, 10, 11, 12],
                     "sessions": ["g0s0", "g0s0", "g0s1", "g0s1", "g0s1"]}  # fmt: skip
    other = {"latencies_ms": [80.0, 1.0], "sent_seconds": [10, 12], "sessions": ["g1s0", "g1s0"]}
    spread = fanout.tail_spread([one_generator, other], 40.0, sessions=3)
    # Second 10 hit three sessions (two of one generator, one of the other); second 12 one.
    assert spread == {"seconds": 2, "sessions": 3, "at_seconds": [10, 12],
                      "sessions_per_second_median": 3, "sessions_per_second_max": 3}  # fmt: skip


@pytest.mark.parametrize("generators", [1, 2, 3])
def test_every_client_of_a_run_sends_at_its_own_evenly_spaced_offset(generators: int) -> None:
    load = fanout.Load(sessions=10, clients=4, rate_hz=20, duration_s=1, drain_s=1,
                       deflate=False, generators=generators)  # fmt: skip
    sessions = list(range(load.sessions))
    offsets = sorted(
        fanout.send_phase_s(load, g, s, c)
        for g in range(generators)
        for s in range(len(sessions[g::generators]))  # the sessions run_load gives generator g
        for c in range(load.clients)
    )
    period_s, clients = 1 / load.rate_hz, load.sessions * load.clients
    assert offsets == pytest.approx([k * period_s / clients for k in range(clients)])


def test_join_snapshot_holds_every_stroke(gateway: GatewayProcess) -> None:
    args = bench_args(join, "--url", gateway.url, "--strokes", "50", "--joins", "2")
    result = join.measure(args)
    assert result["strokes_in_snapshot"] == 50
    assert result["snapshot_bytes"] > 0
    # The first join is one of those the p50 and the max are taken over.
    assert result["applied_first_ms"] <= result["applied_max_ms"]
    assert result["received_first_ms"] <= result["applied_first_ms"]
    assert result["drawing_sent"] == 0


def test_join_while_someone_draws_times_the_drawers_decisions(
    gateway: GatewayProcess,
) -> None:
    args = bench_args(join, "--url", gateway.url, "--strokes", "50", "--joins", "3",
                      "--drawing-hz", "20")  # fmt: skip
    result = join.measure(args)
    assert result["drawing_sent"] > 0
    assert result["drawing_confirmed"] == result["drawing_sent"]
    # Sent, then decided: ts_server is in whole ms, so a decision can share the send's ms.
    assert -1 < result["drawing_decided_p50_ms"] <= result["drawing_decided_max_ms"]
    # The last joiner finds the strokes drawn meanwhile too.
    assert 50 < result["strokes_in_snapshot"] <= 50 + result["drawing_sent"]


def test_scoring_bench_compares_ray_with_plain_processes(ray_address: str) -> None:
    args = bench_args(scoring, "--strokes", "6", "--repeats", "2", "--sessions", "3",
                      "--completions", "12", "--rounds", "2")  # fmt: skip
    # Each round checks that the processes and Ray scored exactly as the single worker did.
    result = scoring.measure(args)
    assert result["ray_cpus"] == 2  # the test Ray's
    assert result["completions"] == 12 and result["completion_strokes_mean"] == 6
    single, plain, on_ray = (
        result[k] for k in ("single_worker_per_s", "processes_per_s", "ray_tasks_per_s")
    )
    assert min(single, plain, on_ray) > 0
    # The ratios come from the unrounded rates; recomputed from the printed ones they may
    # differ in the last digit.
    assert result["speedup"] == pytest.approx(on_ray / single, abs=0.02)
    assert result["ceiling_speedup"] == pytest.approx(plain / single, abs=0.02)
    assert result["ray_share_of_ceiling"] == pytest.approx(on_ray / plain, abs=0.02)
    assert result["processes_cpu_ms_per_step"] > 0
    assert result["ray_cpu_ms_per_step"] is None  # a Ray it did not start: not all local
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("inkstep-")]


def test_checkpoint_bench_times_each_step_of_a_checkpoint_that_restores() -> None:
    args = bench_args(checkpoint, "--events", "120", "--segment-events", "100")
    interval, thresholds, callbacks = sys.getswitchinterval(), gc.get_threshold(), gc.callbacks[:]
    # measure() itself checks that the checkpoint restores the session and the segment
    # holds the last 100 events; it raises otherwise.
    result = checkpoint.measure(args)
    assert [row["step"] for row in result["steps"]] == [
        "copy the mirror (op thread)", "Doc: catch up, encode", "pack the state",
        "write the checkpoint", "archive a segment",
    ]  # fmt: skip
    assert all(row["wall_ms"] > 0 for row in result["steps"])
    assert result["state_bytes"] > 0
    assert result["longest_op_wait_ms"] == max(row["op_wait_ms"] for row in result["steps"])
    # It ran under the actor's interpreter policy and gave this process its own back.
    assert (sys.getswitchinterval(), gc.get_threshold(), gc.callbacks) == (
        interval, thresholds, callbacks
    )  # fmt: skip
    assert gc.get_freeze_count() == 0
