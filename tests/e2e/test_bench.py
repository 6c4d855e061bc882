"""``make bench``'s load generator, run as a command the way an engineer runs it.

Short phases (1 s each) and a small deep queue: these tests check that every
phase drives real traffic through the public interfaces (REST, WebSocket,
webhook and websocket pushes), that the results file and the table report
it, and that the CPU figures add up. They do not judge performance: that is
what a full ``make bench`` on a quiet machine is for (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_ADMIN_DSN, RABBIT_URL, REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    results = tmp_path / "bench-results.json"
    env = dict(os.environ, HERALD_BENCH_PG_ADMIN=PG_ADMIN_DSN,
               HERALD_BENCH_RABBIT=RABBIT_URL, HERALD_BENCH_REDIS=REDIS_URL)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--duration", "1", "--concurrency", "8",
         "--json", str(results), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(results.read_text()), done.stdout


def assert_phase_moved_traffic(phases: dict[str, Any], name: str) -> dict[str, Any]:
    phase = phases[name]
    assert phase["errors"] == 0, (name, phase["error_samples"])
    assert phase["requests"] > 0, name
    assert phase["latency"], name
    return phase


def assert_cpu_use_adds_up(phase: dict[str, Any]) -> None:
    """busy cores = metered CPU-seconds per second; ceiling = cores / cost."""
    use, cpu = phase["cpu_use"], phase["cpu_seconds"]
    units = phase["messages"] or phase["requests"]
    used = sum(cpu.values())
    assert use["cores"] == len(os.sched_getaffinity(0))
    # Both sides are rounded to 2 decimals (busy_cores, and the phase's
    # seconds it is divided by here), so they may differ by a little more than 0.01.
    assert use["busy_cores"] == pytest.approx(used / phase["seconds"], abs=0.02)
    assert use["cpu_ms_per_unit"] == pytest.approx(used / units * 1000, abs=0.001)
    assert use["ceiling_per_s"] == pytest.approx(use["cores"] / (used / units), rel=0.01)
    # The busy cores cannot exceed the machine's (some slack for the
    # /proc clock ticks at both ends of a 1 s phase).
    assert 0 < use["busy_cores"] <= use["cores"] * 1.2


def test_embedded_bench_runs_every_phase_and_reports_it(tmp_path: Path) -> None:
    # With tracing on at 10 % (issue 24's cost figure): nothing fails, and
    # the service's spans reach the bench's sink.
    document, table = run_bench(tmp_path, "--mode", "embedded", "--deep-messages", "2000",
                                "--consume-target", "200", "--push-rate", "50",
                                "--trace-ratio", "0.1", "--fanout-scale", "0.01")
    assert document["tracing"]["ratio"] == 0.1 and document["tracing"]["exports"] > 0
    assert "tracing 10% sampled" in table
    phases = document["phases"]
    for name in ("post_1", "post_10", "list", "claim_delete", "ws_post", "e2e_latency",
                 "push_webhook", "push_websocket", "claim_shallow", "claim_deep"):
        assert_cpu_use_adds_up(assert_phase_moved_traffic(phases, name))
    # What each phase moved is what its role says it moves.
    assert phases["post_10"]["messages"] == 10 * phases["post_10"]["requests"]
    assert phases["ws_post"]["messages"] == phases["ws_post"]["requests"]
    assert phases["claim_delete"]["messages"] > 0
    # Every post of a push phase reached its subscriber, and was timed.
    for name in ("push_webhook", "push_websocket"):
        phase = phases[name]
        assert phase["notes"]["delivered"] == phase["notes"]["posted"] == phase["messages"]
        assert phase["latency"]["push"]["samples"] == phase["messages"]
    assert phases["claim_deep"]["notes"]["queued"] == 2000
    # The broadcast phases, scaled down (10 and 100 connections): every
    # frame of every post reached every subscriber, and was timed.
    for name, subscribers in (("fanout_1k", 10), ("fanout_10k", 100),
                              ("fanout_sustained", 10)):
        phase = phases[name]
        assert phase["notes"]["subscribers"] == subscribers
        assert phase["messages"] > 0
        assert phase["notes"]["delivered"] == phase["notes"]["expected"] == (
            subscribers * phase["messages"])
        assert phase["latency"]["push"]["samples"] == phase["notes"]["expected"]
        assert phase["notes"]["bad_frames"] == 0
    assert phases["idle_10k"]["notes"]["connections"] == 100
    assert phases["idle_10k"]["notes"]["kib_per_connection"] is not None
    assert phases["idle_10k"]["latency"]["request_idle"]["samples"] == 400
    # The embedded mode has one storage worker: no scaling figure.
    assert "claim_delete_1_worker" not in phases
    assert document["mode"] == "embedded"
    assert phases["post_1"]["cpu_seconds"]["run"] > 0
    for figure in ("single-message posts", "10-message batch posts",
                   "claim (10) + delete each", "list (10-message pages)",
                   "websocket posts (persistent)", "push latency, webhook",
                   "push latency, websocket", "claim latency, 2,000 queued vs small",
                   "broadcast to 1,000, post/0.5 s", "sustained websocket pushes",
                   "subscribing 10 connections",
                   "100 idle websockets",
                   "cores busy, ceiling"):
        assert figure in table, figure


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_distributed_bench_meters_every_service_and_compares_worker_counts(
        tmp_path: Path) -> None:
    document, table = run_bench(tmp_path, "--phases", "post_1,claim_delete,"
                                "claim_delete_1_worker", "--consume-target", "200")
    phases = document["phases"]
    two = assert_phase_moved_traffic(phases, "claim_delete")
    one = assert_phase_moved_traffic(phases, "claim_delete_1_worker")
    post = assert_phase_moved_traffic(phases, "post_1")
    for phase in (post, two, one):
        assert_cpu_use_adds_up(phase)
    # Each service of the topology is metered on its own, and did work.
    for service in ("api", "ws-gateway", "storage-1", "storage-2", "postgres",
                    "rabbitmq", "bench-client"):
        assert service in post["cpu_seconds"], service
    assert post["cpu_seconds"]["api"] > 0
    assert post["cpu_seconds"]["storage-1"] + post["cpu_seconds"]["storage-2"] > 0
    # The 1-worker phase ran with storage-2 stopped, so it is not metered.
    assert "storage-2" in two["cpu_seconds"]
    assert "storage-2" not in one["cpu_seconds"]
    assert one["cpu_seconds"]["storage-1"] > 0
    assert "2 storage workers vs 1 (consumers)" in table
