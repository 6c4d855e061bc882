"""Herald's Prometheus metrics: every series a Herald process exports, defined once.

The metric objects live on ``prometheus_client``'s default registry, which
also carries the client library's process, platform and GC collectors. The
hooks on the request path (REST handlers, websocket connections, the RPC
proxy, the storage controllers, the outbox dispatcher) only increment or
observe what is defined here, through label children bound once
(``child()``), so a request costs a dict lookup and an atomic add, never a
label dict. Queue-level series are not here: ``herald.common.metrics.backlog``
serves the gauges the storage workers compute, and labels never carry a
queue name except on those capped series.

``ENABLED`` is False in a process whose ``[metrics] port`` is 0
(``herald.common.metrics.listener.start_from_conf``): the hooks test it and
skip their work, so metrics off cost one attribute read per hook.

The modules of this package:

``listener``   the operator listener: ``GET /metrics`` on ``[metrics] bind/port``.
``backlog``    queue depth, oldest age and outbox backlog gauges, from worker snapshots.

This package must not run queries or do network I/O on a scrape, and must
not decide anything about the requests it counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``*_created`` series: they double every counter's and histogram's series
# and no query of ours (docs/operations.md, the dashboard) reads them.
disable_created_metrics()

#: False once a process started with ``[metrics] port = 0``: hooks do nothing.
ENABLED = True

# Request latencies: 1 ms .. 30 s (a long poll waits up to 30 s; those stay
# in the last buckets, by route, where the dashboard expects them).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)

MESSAGES_POSTED = Counter(
    "herald_messages_posted", "Messages accepted by posts (committed), by this storage worker.")
MESSAGES_CLAIMED = Counter(
    "herald_messages_claimed", "Messages handed out by claims, by this storage worker.")
MESSAGES_DELETED = Counter(
    "herald_messages_deleted",
    "Messages deleted by clients (single and bulk deletes, pops), by this storage worker; "
    "expiry is not counted.")
MESSAGES_DEAD_LETTERED = Counter(
    "herald_messages_dead_lettered",
    "Messages moved to a dead-letter queue after too many claims, by this storage worker.")
EMPTY_CLAIMS = Counter(
    "herald_empty_claims", "Claims (and pops) that found no message to take.")

HTTP_REQUESTS = Counter(
    "herald_http_requests",
    "REST requests answered, by method, route template (never the raw path) and status.",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "herald_http_request_duration_seconds",
    "Time from a REST request's arrival to its last byte written, by method and route "
    "template.", ["method", "route"], buckets=_LATENCY_BUCKETS)

RPC_DURATION = Histogram(
    "herald_rpc_call_duration_seconds",
    "Storage RPC calls seen from the caller (api, ws-gateway, embedded): time until the "
    "reply, by StorageAPI method, errors included.", ["method"], buckets=_LATENCY_BUCKETS)
RPC_BATCH_SIZE = Histogram(
    "herald_rpc_batch_size",
    "Operations per RPC message sent by the caller's coalescer (1: sent alone).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

WS_CONNECTIONS = Gauge("herald_ws_connections", "Open websocket connections of this process.")
WS_FRAMES = Counter(
    "herald_ws_frames",
    "Websocket frames, by direction (in: requests, out: replies and pushes) and format "
    "(json text frames, msgpack binary frames).", ["direction", "format"])

SUBSCRIPTION_DELIVERIES = Counter(
    "herald_subscription_deliveries",
    "Notification delivery attempts, by subscriber kind (webhook, email, websocket) and "
    "outcome (delivered, retry, failed: given up, gone: subscriber removed).",
    ["kind", "outcome"])

M = TypeVar("M", Counter, Gauge, Histogram)


def child(metric: M, *labels: str) -> M:
    """The label child of ``metric`` for ``labels``, bound once by the caller."""
    return metric.labels(*labels)  # type: ignore[return-value]


class ChildCache:
    """Label children of one metric by label tuple, for labels known only per
    request (a status code, a route): one dict lookup once warm. Label values
    come from bounded sets (route templates, status codes, methods)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        found = self._children.get(labels)
        if found is None:
            found = self._children[labels] = self._metric.labels(*labels)
        return found


def after_commit(db: Any, counter: Counter, amount: int) -> None:
    """Count ``amount`` on ``counter`` once ``db``'s current transaction
    commits (a rolled-back batch counts nothing); nothing for 0."""
    if amount and ENABLED:
        inc: Callable[[float], None] = counter.inc
        db.after_commit(lambda: inc(amount))
