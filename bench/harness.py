"""Measurement plumbing of the load generator: recorders, phases, CPU, tables.

A *phase* runs a set of role coroutines (``bench.roles``) concurrently until
its duration has passed or its request budget is spent, then reports one
``PhaseResult`` (requests/s, messages/s, latency percentiles, errors, the CPU
seconds each server process used during the phase, and what those say about
the machine: how many of its cores were busy, and the rate at which all of
them would be). Nothing here speaks HTTP or knows Herald's API: that is
``bench.roles``. Nothing here starts processes either: that is ``bench.run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` from /proc/<pid>/stat (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_cores() -> int:
    """Cores this process may run on: the ones every metered process shares."""
    return len(os.sched_getaffinity(0))


def pids_named(names: tuple[str, ...]) -> list[int]:
    """Pids whose /proc comm is one of ``names`` (PostgreSQL backends, RabbitMQ)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as comm:
                if comm.read().strip() in names:
                    found.append(int(entry))
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by named processes.

    ``processes`` maps a label (``api``, ``storage-1``...) to a pid; groups of
    short-lived processes (PostgreSQL forks one backend per connection) are
    sampled by name at both ends, which undercounts backends that exited in
    between: the figure for ``postgres`` is a lower bound.
    """

    GROUPS: Mapping[str, tuple[str, ...]] = {"postgres": ("postgres",),
                                             "rabbitmq": ("beam.smp",)}

    def __init__(self, processes: Mapping[str, int]) -> None:
        self._processes = dict(processes)
        self._before: dict[str, float] = {}
        self._group_before: dict[str, dict[int, float]] = {}
        self._self_before = 0.0

    def _group_sample(self, names: tuple[str, ...]) -> dict[int, float]:
        sample = {}
        for pid in pids_named(names):
            value = cpu_seconds(pid)
            if value is not None:
                sample[pid] = value
        return sample

    def start(self) -> None:
        self._before = {label: cpu_seconds(pid) or 0.0 for label, pid in self._processes.items()}
        self._group_before = {label: self._group_sample(names)
                              for label, names in self.GROUPS.items()}
        times = os.times()
        self._self_before = times.user + times.system

    def stop(self) -> dict[str, float]:
        used = {}
        for label, pid in self._processes.items():
            after = cpu_seconds(pid)
            if after is not None:
                used[label] = round(after - self._before.get(label, 0.0), 2)
        for label, names in self.GROUPS.items():
            after_group = self._group_sample(names)
            before = self._group_before.get(label, {})
            used[label] = round(sum(value - before.get(pid, 0.0)
                                    for pid, value in after_group.items()), 2)
        times = os.times()
        used["bench-client"] = round(times.user + times.system - self._self_before, 2)
        return used


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_summary(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    ordered = sorted(values)
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        "samples": len(ordered),
    }


class Recorder:
    """What the roles of one phase report: requests, messages, latencies, errors."""

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self.requests = 0
        self.messages = 0
        self.errors = 0
        self.empty = 0  # claims that found nothing (204): not errors, not messages
        self.latencies: dict[str, list[float]] = {}
        self.error_samples: list[str] = []
        self.stopping = asyncio.Event()

    def done(self) -> bool:
        return self.stopping.is_set()

    def request(self, kind: str, seconds: float, messages: int = 0) -> None:
        self.requests += 1
        self.messages += messages
        self.latencies.setdefault(kind, []).append(seconds)
        if self.requests >= self.max_requests:
            self.stopping.set()

    def latency(self, kind: str, seconds: float) -> None:
        """A latency that is not a request of ours (push, end to end)."""
        self.latencies.setdefault(kind, []).append(seconds)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


@dataclasses.dataclass
class PhaseResult:
    name: str
    seconds: float
    requests: int
    messages: int
    errors: int
    empty: int
    requests_per_s: float
    messages_per_s: float
    latency: dict[str, dict[str, float]]
    cpu_seconds: dict[str, float]
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)
    error_samples: list[str] = dataclasses.field(default_factory=list)
    cpu_use: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Role = Callable[[Recorder], Awaitable[None]]


async def run_phase(name: str, roles: list[Role], duration: float, max_requests: int,
                    processes: Mapping[str, int], settle: float = 0.0,
                    notes: dict[str, Any] | None = None) -> PhaseResult:
    """Run ``roles`` together for at most ``duration`` s / ``max_requests``.

    Roles loop until ``recorder.done()``; ``settle`` seconds after the stop
    are granted for in-flight pushes to arrive (not counted in the rates).
    """
    recorder = Recorder(max_requests)
    meter = CpuMeter(processes)
    meter.start()
    started = time.perf_counter()
    tasks = [asyncio.create_task(role(recorder)) for role in roles]
    try:
        await asyncio.wait_for(recorder.stopping.wait(), timeout=duration)
    except TimeoutError:
        recorder.stopping.set()
    elapsed = time.perf_counter() - started
    # Let every role finish the operation it is in (bounded).
    _, pending = await asyncio.wait(tasks, timeout=30 + settle)
    for task in pending:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            recorder.error(f"role crashed: {task.exception()!r}")
    cpu = meter.stop()
    return PhaseResult(
        name=name, seconds=round(elapsed, 2), requests=recorder.requests,
        messages=recorder.messages, errors=recorder.errors, empty=recorder.empty,
        requests_per_s=round(recorder.requests / elapsed, 1),
        messages_per_s=round(recorder.messages / elapsed, 1),
        latency={kind: latency_summary(values) for kind, values in recorder.latencies.items()},
        cpu_seconds=cpu, notes=dict(notes or {}), error_samples=recorder.error_samples,
        # Without Herald's own processes (an external target) the sum would
        # leave out most of the work: no figure rather than a wrong one.
        cpu_use=cpu_use(cpu, elapsed, recorder.messages or recorder.requests,
                        machine_cores()) if processes else {},
    )


def cpu_use(cpu_seconds: Mapping[str, float], seconds: float, units: int,
            cores: int) -> dict[str, float]:
    """How busy the machine was in a phase, and the most its cores allow.

    Every process the phase metered shares the machine's ``cores``: Herald's,
    PostgreSQL's, RabbitMQ's and this load generator's own. ``busy_cores`` is
    their CPU-seconds per second of the phase. ``cpu_ms_per_unit`` is those
    CPU-seconds per unit moved (a message, or a request when the phase moves
    none). ``ceiling_per_s`` is the rate at which every core would be busy at
    that cost: a figure cannot exceed it on this machine until the cost per
    unit falls. PostgreSQL's share is a lower bound (``CpuMeter``), so the
    ceiling is an upper one.
    """
    used = sum(cpu_seconds.values())
    if seconds <= 0 or units <= 0 or used <= 0:
        return {}
    per_unit = used / units
    return {"cores": cores, "busy_cores": round(used / seconds, 2),
            "cpu_ms_per_unit": round(per_unit * 1000, 3),
            "ceiling_per_s": round(cores / per_unit, 1)}


def format_table(rows: list[tuple[str, ...]]) -> str:
    """A plain-text table of (figure, measured, target, verdict, cores) rows."""
    header = ("figure", "measured", "target", "ok", "cores busy, ceiling")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(cell).ljust(width) for cell, width in zip(header, widths,
                                                                         strict=True))]
    lines.append("-+-".join("-" * width for width in widths))
    for row in rows:
        lines.append(" | ".join(str(cell).ljust(width)
                                for cell, width in zip(row, widths, strict=True)))
    return "\n".join(lines)
