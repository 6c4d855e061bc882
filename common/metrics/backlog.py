"""Queue depth, oldest-message age and outbox backlog gauges, from the storage workers' snapshots.

A storage worker (``herald.storage.backlog``) measures its databases every
``[metrics] backlog_interval`` seconds and ``publish``es a ``Snapshot`` of
the queues it owns in the tooz partition, so across a cluster each queue is
reported by exactly one worker. A scrape only reads the last snapshots of
the workers of this process (``BacklogCollector``, on the default registry):
it never runs a query. Ages are computed at scrape time from the stored
creation times, so they keep growing between two measurements.

Series (``project``/``queue`` labels only on the capped per-queue ones):

- ``herald_queue_messages{project,queue,state}`` and
  ``herald_queue_oldest_message_age_seconds{project,queue}``: the
  ``[metrics] max_queue_series`` deepest queues of the cluster;
- ``herald_project_messages{project,state}`` and
  ``herald_project_oldest_message_age_seconds{project}``: totals over this
  worker's queues (sum, resp. max, them across workers);
- ``herald_outbox_pending`` and ``herald_outbox_oldest_age_seconds``: the
  notifications waiting for delivery of this worker's queues;
- ``herald_backlog_measured_timestamp_seconds``: when the snapshot was taken.

This module holds no SQL: the worker measures, this only reports.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STATES = ("ready", "claimed", "delayed")


@dataclasses.dataclass(frozen=True)
class QueueBacklog:
    """The live messages of one queue (or one project's queues, ``queue=""``)."""

    project: str
    queue: str
    ready: int
    claimed: int
    delayed: int
    #: Epoch seconds of the oldest live message's creation; None when empty.
    oldest_created: float | None

    @property
    def total(self) -> int:
        return self.ready + self.claimed + self.delayed


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one storage worker measured of the queues it owns."""

    #: The owned queues among the cluster's deepest ``max_queue_series``.
    queues: list[QueueBacklog]
    #: Per-project totals of every owned queue (``queue`` is "").
    projects: list[QueueBacklog]
    outbox_pending: int
    outbox_oldest_created: float | None
    measured_at: float


class BacklogBoard:
    """The last snapshot of each storage worker of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def publish(self, reporter: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots[reporter] = snapshot

    def withdraw(self, reporter: str) -> None:
        """A stopped worker's queues are reported by their next owner."""
        with self._lock:
            self._snapshots.pop(reporter, None)

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots.values())


def _age(created: float | None, now: float) -> float:
    return max(0.0, now - created) if created is not None else 0.0


class BacklogCollector(Collector):
    """Serves the board's snapshots as gauge families (empty families when
    this process runs no storage worker, so every name is always listed)."""

    def __init__(self, board: BacklogBoard) -> None:
        self._board = board

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshots = self._board.snapshots()
        now = time.time()
        queue_messages, queue_age, project_messages, project_age, pending, pending_age, \
            measured = self._families()
        projects: dict[str, list[float]] = {}
        outbox_pending = 0
        outbox_oldest: float | None = None
        for snapshot in snapshots:
            for q in snapshot.queues:
                for state, value in zip(STATES, (q.ready, q.claimed, q.delayed), strict=True):
                    queue_messages.add_metric([q.project, q.queue, state], value)
                queue_age.add_metric([q.project, q.queue], _age(q.oldest_created, now))
            for p in snapshot.projects:
                # Two workers of one process (tests) may each own queues of a project.
                totals = projects.setdefault(p.project, [0, 0, 0, 0.0])
                totals[0] += p.ready
                totals[1] += p.claimed
                totals[2] += p.delayed
                totals[3] = max(totals[3], _age(p.oldest_created, now))
            outbox_pending += snapshot.outbox_pending
            if snapshot.outbox_oldest_created is not None:
                outbox_oldest = min(outbox_oldest or snapshot.outbox_oldest_created,
                                    snapshot.outbox_oldest_created)
        for project, (ready, claimed, delayed, age) in sorted(projects.items()):
            for state, value in zip(STATES, (ready, claimed, delayed), strict=True):
                project_messages.add_metric([project, state], value)
            project_age.add_metric([project], age)
        if snapshots:
            measured.add_metric([], max(s.measured_at for s in snapshots))
            pending.add_metric([], outbox_pending)
            pending_age.add_metric([], _age(outbox_oldest, now))
        yield from (queue_messages, queue_age, project_messages, project_age, pending,
                    pending_age, measured)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "herald_queue_messages",
                "Live messages of the deepest queues ([metrics] max_queue_series), by state: "
                "ready (claimable now), claimed, delayed.", labels=["project", "queue", "state"]),
            GaugeMetricFamily(
                "herald_queue_oldest_message_age_seconds",
                "Age of the oldest live message of each of the deepest queues (0 when empty).",
                labels=["project", "queue"]),
            GaugeMetricFamily(
                "herald_project_messages",
                "Live messages of a project's queues owned by this storage worker, by state "
                "(sum across workers).", labels=["project", "state"]),
            GaugeMetricFamily(
                "herald_project_oldest_message_age_seconds",
                "Age of the oldest live message of a project's queues owned by this storage "
                "worker (max across workers).", labels=["project"]),
            GaugeMetricFamily(
                "herald_outbox_pending",
                "Notifications waiting for delivery (retries included) of the queues this "
                "storage worker owns."),
            GaugeMetricFamily(
                "herald_outbox_oldest_age_seconds",
                "Age of the oldest notification waiting for delivery (0 when none)."),
            GaugeMetricFamily(
                "herald_backlog_measured_timestamp_seconds",
                "When this storage worker last measured the backlog gauges (epoch seconds)."),
        )


#: The board every storage worker of this process publishes on.
BOARD = BacklogBoard()
REGISTRY.register(BacklogCollector(BOARD))
