"""Integration: the shared bus nonce store on the machine's Redis.

``nonce_store.from_conf`` with a ``redis://`` coordination URL: a nonce is
new once for every store of the deployment, lives in Redis until its
message is stale (plus the clock margin) and is then new again; a Redis
that refuses or does not answer is bounded by ``[rpc] bus_nonce_timeout``
and held off for ``HOLD_SECONDS``.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from herald.common import config
from herald.common.rpc import nonce_store
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.redis]


@pytest.fixture
def conf(redis_coordination_url: str) -> Iterator[Any]:
    conf = config.load([])
    conf.set_override("backend_url", redis_coordination_url, group="coordination")
    conf.set_override("bus_max_skew", 1.0, group="rpc")
    # The Redis store itself, without the default fallback to local memory:
    # an unreachable Redis must show as NonceStoreUnavailable here.
    conf.set_override("bus_nonce_unreachable", "reject", group="rpc")
    yield conf
    for name, group in [("backend_url", "coordination"), ("bus_max_skew", "rpc"),
                        ("bus_nonce_timeout", "rpc"), ("bus_nonce_unreachable", "rpc")]:
        conf.clear_override(name, group=group)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def test_a_nonce_is_new_once_for_all_stores_then_expires(conf: Any,
                                                         redis_coordination_url: str) -> None:
    worker_a, worker_b = nonce_store.from_conf(conf), nonce_store.from_conf(conf)
    assert isinstance(worker_a, nonce_store.RedisNonceStore)
    namespace = redis_coordination_url.split("namespace=")[1]
    nonce = uuid.uuid4().hex
    key = f"{namespace}:herald-bus-nonce:{nonce}"
    client = _redis()
    try:
        # Stale in 0.5 s, kept 1 s (bus_max_skew) longer for slower clocks.
        expires_at = time.time() + 0.5
        assert worker_a.first_use(nonce, expires_at)
        assert not worker_b.first_use(nonce, expires_at)  # another worker: a replay
        assert not worker_a.first_use(nonce, expires_at)
        assert 1000 < client.pttl(key) <= 1500
        deadline = time.monotonic() + 5
        while client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.exists(key), "the nonce never expired"
        assert worker_b.first_use(nonce, time.time() + 0.5)  # forgotten: new again
    finally:
        client.delete(key)
        client.close()
        worker_a.close()
        worker_b.close()


def test_refused_connection_fails_closed_at_once(conf: Any) -> None:
    conf.set_override("backend_url", "redis://127.0.0.1:1?namespace=nowhere",
                      group="coordination")
    store = nonce_store.from_conf(conf)
    started = time.monotonic()
    with pytest.raises(nonce_store.NonceStoreUnavailable, match="unreachable"):
        store.first_use(uuid.uuid4().hex, time.time() + 60)
    assert time.monotonic() - started < 0.5
    store.close()


def test_silent_redis_costs_one_timeout_then_answers_at_once(conf: Any) -> None:
    """A Redis that accepts the connection and never answers (stalled):
    the first check waits ``bus_nonce_timeout``, the next ones within
    ``HOLD_SECONDS`` are refused without waiting."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes handshakes; nothing ever replies
    port = silent.getsockname()[1]
    conf.set_override("backend_url", f"redis://127.0.0.1:{port}?namespace=silent",
                      group="coordination")
    conf.set_override("bus_nonce_timeout", 0.2, group="rpc")
    store = nonce_store.from_conf(conf)
    try:
        started = time.monotonic()
        with pytest.raises(nonce_store.NonceStoreUnavailable, match="[Tt]imeout"):
            store.first_use(uuid.uuid4().hex, time.time() + 60)
        first = time.monotonic() - started
        assert 0.15 < first < 1.0
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(nonce_store.NonceStoreUnavailable):
                store.first_use(uuid.uuid4().hex, time.time() + 60)
        assert time.monotonic() - started < 0.1
    finally:
        store.close()
        silent.close()
