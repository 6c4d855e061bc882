"""Where the bus verifiers remember the nonces of signed messages they accepted.

A signed bus message (``bus_auth``) is valid for ``[rpc] bus_max_skew``
seconds around its timestamp. Remembering its nonce for that long is what
turns a replay inside the window into a rejection -- but only where the
replay is checked against the same memory. A storage worker's memory alone
lets a message captured on its way to worker A be replayed to worker B
(``topic.<B>``, or the shared pool queue) and run twice. So the store is
picked from ``[coordination] backend_url`` (``from_conf``):

* ``redis://`` (production; ``ssl``, ``sentinel`` and the other tooz URL
  options mean what they mean for the coordinator): ``RedisNonceStore``, shared by every worker and
  gateway of the deployment. One ``SET <key> <token> NX PX <ms>`` per
  verified message (~0.15-0.2 ms on a local Redis; see
  docs/bus-security.md), keys under ``<tooz namespace>:herald-bus-nonce:``
  expiring on their own; nothing else is kept.
* anything else, notably ``file://`` (embedded mode, one process):
  ``MemoryNonceStore``, one per process: the one the process's services
  share (``LocalBus.nonces``, passed down as ``memory``). With ``herald run`` nothing crosses
  the bus at all; a deployment of several processes that runs RPC over a
  broker with ``file://`` coordination gets per-process replay protection
  only -- it needs Redis coordination for its partitions anyway.
* listeners of a *fanout* topic (the long-poll wake-ups) get a memory of
  their own whatever the backend (``shared=False``): a fanout cast is
  legitimately delivered to every listener with the same nonce, so a shared
  memory would reject all deliveries but the first.

**Redis unreachable** (refused, timed out after ``[rpc] bus_nonce_timeout``,
or an error reply), ``[rpc] bus_nonce_unreachable`` decides:

* ``local`` (the default): the verifier falls back to the nonces it saw
  itself (it always records them in that mode, so a replay to the *same*
  process is still caught during the outage). Storage keeps working without
  Redis, as coordination does (tests/faults/test_redis_stall.py); a replay
  to another worker inside the window is not caught until Redis is back.
* ``reject`` (fail closed): the message is not run. A call is answered
  ``ServiceUnavailable`` (the edge's client gets 503 and may retry), a cast
  is dropped. Nothing a captured message could do is allowed while replays
  cannot be ruled out; the price is that Redis becomes part of the data
  path: while it is down or stalled, no storage call succeeds.

Either way the cost of an outage is bounded: after a failure the store does
not touch Redis for ``HOLD_SECONDS`` (every message meanwhile gets the
policy's answer at once), then tries again; a single stale pooled
connection (Redis restarted) is retried once at once, with tenacity.

This module only remembers strings with an expiry. It must not verify
signatures, know messages or methods, or hold a coordinator: it opens its
own small Redis client from the same URL, so a stalled tooz heartbeat
never waits behind a nonce check or the other way round.
"""

from __future__ import annotations

import collections
import logging
import math
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

import redis
import redis.backoff
import redis.exceptions
import redis.retry
import tenacity
from oslo_config import cfg
from tooz.drivers import redis as tooz_redis

LOG = logging.getLogger(__name__)

#: Most nonces a memory store keeps; beyond that the oldest are forgotten
#: (a bound on memory under a flood; at normal rates the window expires
#: entries long before).
MAX_NONCES = 200_000

#: Seconds a Redis store answers with its policy, without trying Redis,
#: after Redis failed: one timeout per this period, not one per message.
HOLD_SECONDS = 1.0

#: The values of ``[rpc] bus_nonce_unreachable``.
UNREACHABLE_REJECT = "reject"
UNREACHABLE_LOCAL = "local"

class NonceStoreUnavailable(Exception):
    """The shared store could not tell whether a nonce is new (the message
    must not run)."""


class NonceStore(Protocol):
    def first_use(self, nonce: str, expires_at: float) -> bool:
        """Record ``nonce`` until ``expires_at`` (epoch seconds, the moment
        its message turns stale); False when it was already recorded and has
        not expired. Raises ``NonceStoreUnavailable`` when it cannot tell."""
        ...

    def close(self) -> None: ...


class MemoryNonceStore:
    """Nonces of one process, in a bounded ordered dict. Thread-safe."""

    def __init__(self, max_nonces: int = MAX_NONCES,
                 clock: Callable[[], float] = time.time) -> None:
        self._max_nonces = max_nonces
        self._clock = clock
        self._lock = threading.Lock()
        # nonce -> when it may be forgotten, in insertion order. Expiries are
        # nearly in that order (a message's ts is its send time); one out of
        # order only stays a little longer.
        self._nonces: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._nonces)

    def first_use(self, nonce: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            while self._nonces:
                oldest, expires = next(iter(self._nonces.items()))
                if expires > now and len(self._nonces) < self._max_nonces:
                    break
                del self._nonces[oldest]
            known = self._nonces.get(nonce)
            if known is not None and known > now:
                return False
            self._nonces[nonce] = expires_at
            return True

    def close(self) -> None:
        """Nothing to release (the process-wide store outlives any server)."""


class RedisNonceStore:
    """Nonces of the whole deployment, one Redis key each, with expiry."""

    def __init__(self, client: Any, prefix: str, margin: float,
                 local: MemoryNonceStore | None = None,
                 clock: Callable[[], float] = time.time,
                 hold: float = HOLD_SECONDS) -> None:
        """``margin``: seconds a key outlives its message's staleness on the
        recording process's clock, for verifiers whose clocks run behind.
        ``local``: the ``local`` policy's fallback memory (None: reject)."""
        self._client = client
        self._prefix = prefix
        self._margin = margin
        self._local = local
        self._clock = clock
        self._hold = hold
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_since: float | None = None
        self._failed = 0
        # Only a broken connection is worth an immediate second try: a
        # timeout already spent the whole budget.
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(redis.exceptions.ConnectionError),
            stop=tenacity.stop_after_attempt(2),
            reraise=True,
        )

    def first_use(self, nonce: str, expires_at: float) -> bool:
        # In the local policy the process's own memory is always consulted
        # and fed first: it is what still stands when Redis does not.
        if self._local is not None and not self._local.first_use(nonce, expires_at):
            return False
        now = self._clock()
        with self._lock:
            down = now < self._down_until
        if down:
            return self._unavailable("unreachable a moment ago")
        ttl_ms = max(1, math.ceil((expires_at - now + self._margin) * 1000))
        token = secrets.token_hex(8)
        attempts = 0

        def set_once() -> bool:
            nonlocal attempts
            attempts += 1
            key = self._prefix + nonce
            if self._client.set(key, token, nx=True, px=ttl_ms):
                return True
            # A retry after a connection broke mid-reply: the first SET may
            # have landed, and the key then holds this attempt's own token.
            if attempts > 1:
                held = self._client.get(key)
                return held is not None and held.decode() == token
            return False

        try:
            fresh = self._retrying(set_once)
        except redis.exceptions.RedisError as exc:
            self._went_down(now, exc)
            return self._unavailable(str(exc) or type(exc).__name__)
        self._came_back(now)
        return bool(fresh)

    def _unavailable(self, reason: str) -> bool:
        if self._local is not None:
            return True  # already checked against (and recorded in) local memory
        raise NonceStoreUnavailable(f"bus nonce store (Redis) unreachable: {reason}")

    def _went_down(self, now: float, exc: BaseException) -> None:
        with self._lock:
            self._down_until = now + self._hold
            self._failed += 1
            first = self._down_since is None
            if first:
                self._down_since = now
        if first:
            LOG.warning("bus nonce store (Redis) unreachable: %s; %s until it answers "
                        "(tried again every %.1f s)", exc,
                        "signed bus messages are rejected" if self._local is None
                        else "replays are only checked against this process's memory",
                        self._hold)

    def _came_back(self, now: float) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            failed, self._failed = self._failed, 0
        if since is not None:
            LOG.info("bus nonce store (Redis) reachable again after %.1f s (%d failed "
                     "attempt(s))", now - since, failed)

    def close(self) -> None:
        self._client.close()


def _redis_client(parsed: urllib.parse.SplitResult, timeout: float) -> Any:
    """A redis-py client for the tooz URL ``parsed``, short timeouts, no
    redis-py retries (tenacity decides, above)."""
    query = urllib.parse.parse_qs(parsed.query)
    options: dict[str, Any] = {
        key: values if key in tooz_redis.RedisDriver.CLIENT_LIST_ARGS else values[-1]
        for key, values in query.items()}
    options["socket_timeout"] = timeout
    options["socket_connect_timeout"] = timeout
    # tooz's own builder, so that host, port, password, db, ssl and sentinel
    # options mean exactly what they mean for the coordinator (private, but
    # a classmethod whose signature has not changed in years).
    client = tooz_redis.RedisDriver._make_client(parsed, options, timeout)
    # redis-py 6+ retries each command three times with backoff by default,
    # which would stretch the bounded wait past bus_nonce_timeout.
    client.set_retry(redis.retry.Retry(redis.backoff.NoBackoff(), 0))
    return client


def from_conf(conf: cfg.ConfigOpts, shared: bool = True,
              memory: MemoryNonceStore | None = None) -> NonceStore:
    """The store for one RPC server's verifier (see the module docstring);
    ``memory``: the process's memory, used when the backend is not Redis
    (a new one if not given)."""
    if not shared:
        return MemoryNonceStore()
    parsed = urllib.parse.urlsplit(conf.coordination.backend_url)
    if parsed.scheme != "redis":
        return memory if memory is not None else MemoryNonceStore()
    namespace = urllib.parse.parse_qs(parsed.query).get("namespace", ["_tooz"])[-1]
    local = (MemoryNonceStore() if conf.rpc.bus_nonce_unreachable == UNREACHABLE_LOCAL
             else None)
    return RedisNonceStore(_redis_client(parsed, conf.rpc.bus_nonce_timeout),
                           f"{namespace}:herald-bus-nonce:", margin=conf.rpc.bus_max_skew,
                           local=local)
