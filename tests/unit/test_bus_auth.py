"""Unit: signing and verifying bus messages (``herald.common.rpc.bus_auth``)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import redis.exceptions

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc import bus_auth, nonce_store
from herald.common.rpc.serializer import JsonSerializer
from herald.common.rpc.server import _TypedErrorsAreReplies

CTXT = RequestContext(project_id="p1", client_id="c1", request_id="req-1", roles=("admin",))
KWARGS: dict[str, Any] = {"queue": "q", "messages": [{"body": b"\x00\x01", "ttl": 60}], "n": 1.5}


def _verifier(*keys: str, skew: float = 60.0) -> bus_auth.Verifier:
    return bus_auth.Verifier(list(keys), skew)


def test_signed_message_verifies_and_context_may_be_dict_or_object() -> None:
    auth = bus_auth.sign("k1", "message_post", KWARGS, CTXT)
    assert set(auth) == {"v", "ts", "nonce", "kid", "sig"} and "k1" not in auth["kid"]
    assert auth["v"] == 2
    _verifier("k1").verify("message_post", KWARGS, CTXT.to_dict(), auth)


def test_version_1_signatures_still_verify_and_unknown_versions_do_not() -> None:
    """A peer that signs the json module's canonical text (version 1, no
    ``v``) is accepted; a version this process does not know is malformed."""
    ts, nonce = time.time(), "n-1"
    v1 = {"ts": ts, "nonce": nonce, "kid": bus_auth.key_id("k1"),
          "sig": bus_auth._digest("k1", "message_post", KWARGS, CTXT.to_dict(), ts, nonce, 1)}
    _verifier("k1").verify("message_post", KWARGS, CTXT, v1)
    # The versions' texts differ where json escapes and orjson does not.
    accented = {**KWARGS, "queue": "é"}
    v2 = bus_auth.sign("k1", "message_post", accented, CTXT)
    _verifier("k1").verify("message_post", accented, CTXT, v2)
    with pytest.raises(bus_auth.BusAuthError, match="bad signature"):
        _verifier("k1").verify("message_post", accented, CTXT, {**v2, "v": 1})
    for version in (3, True, "2"):
        with pytest.raises(bus_auth.BusAuthError, match="malformed"):
            _verifier("k1").verify("message_post", KWARGS, CTXT,
                                   {**bus_auth.sign("k1", "message_post", KWARGS, CTXT),
                                    "v": version})


def test_rotation_second_key_still_verifies_first_signs() -> None:
    old = bus_auth.sign("old", "ping", {}, CTXT)
    _verifier("new", "old").verify("ping", {}, CTXT, old)
    signed = bus_auth.Signer(["new", "old"]).add_auth("ping", CTXT, {})
    assert signed[bus_auth.AUTH_ARG]["kid"] == bus_auth.key_id("new")
    with pytest.raises(bus_auth.BusAuthError, match="unknown key"):
        _verifier("old").verify("ping", {}, CTXT, signed[bus_auth.AUTH_ARG])


@pytest.mark.parametrize("method, kwargs, ctxt", [
    ("message_delete", KWARGS, CTXT),
    ("message_post", {**KWARGS, "queue": "other"}, CTXT),
    ("message_post", {**KWARGS, "messages": [{"body": b"\x00\x02", "ttl": 60}]}, CTXT),
    ("message_post", KWARGS, RequestContext(project_id="p2", client_id="c1",
                                           request_id="req-1", roles=("admin",))),
])
def test_tampered_method_kwargs_or_context_is_rejected(method: str, kwargs: dict[str, Any],
                                                        ctxt: RequestContext) -> None:
    auth = bus_auth.sign("k1", "message_post", KWARGS, CTXT)
    with pytest.raises(bus_auth.BusAuthError, match="bad signature"):
        _verifier("k1").verify(method, kwargs, ctxt, auth)


def test_a_tampered_trace_context_fails_the_signature() -> None:
    """The traceparent travels in the signed context (``herald.common.tracing``):
    changing, adding or removing it on the bus is tampering like any other."""
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced = RequestContext(project_id="p1", client_id="c1", request_id="req-1",
                            roles=("admin",), traceparent=f"00-{trace}-{span}-01")
    auth = bus_auth.sign("k1", "message_post", KWARGS, traced)
    _verifier("k1").verify("message_post", KWARGS, traced.to_dict(), auth)
    for forged in (f"00-{trace[::-1]}-{span}-01", f"00-{trace}-{span[::-1]}-01",
                   f"00-{trace}-{span}-00"):
        with pytest.raises(bus_auth.BusAuthError, match="bad signature"):
            _verifier("k1").verify("message_post", KWARGS,
                                   {**traced.to_dict(), "traceparent": forged}, auth)
    with pytest.raises(bus_auth.BusAuthError, match="bad signature"):  # stripped
        _verifier("k1").verify("message_post", KWARGS, CTXT.to_dict(), auth)
    with pytest.raises(bus_auth.BusAuthError, match="bad signature"):  # added
        _verifier("k1").verify("message_post", KWARGS, traced.to_dict(),
                               bus_auth.sign("k1", "message_post", KWARGS, CTXT))
    # Tracing off: the context on the wire is what it always was.
    assert "traceparent" not in CTXT.to_dict()
    assert RequestContext.from_dict(traced.to_dict()) == traced


def test_unsigned_malformed_and_forged_are_rejected() -> None:
    verifier = _verifier("k1")
    with pytest.raises(bus_auth.BusAuthError, match="unsigned"):
        verifier.verify("ping", {}, CTXT, None)
    with pytest.raises(bus_auth.BusAuthError, match="malformed"):
        verifier.verify("ping", {}, CTXT, {"ts": "now"})
    forged = bus_auth.sign("k1", "ping", {}, CTXT)
    forged["sig"] = bus_auth.sign("guess", "ping", {}, CTXT)["sig"]
    with pytest.raises(bus_auth.BusAuthError, match="bad signature"):
        verifier.verify("ping", {}, CTXT, forged)


def test_stale_or_future_timestamp_is_rejected() -> None:
    verifier = _verifier("k1", skew=5)
    for ts in (time.time() - 6, time.time() + 6):
        with pytest.raises(bus_auth.BusAuthError, match="stale"):
            verifier.verify("ping", {}, CTXT, bus_auth.sign("k1", "ping", {}, CTXT, ts=ts))


def test_replay_within_window_is_rejected_and_memory_is_bounded() -> None:
    store = nonce_store.MemoryNonceStore(max_nonces=10)
    verifier = bus_auth.Verifier(["k1"], 60, store)
    auth = bus_auth.sign("k1", "ping", {}, CTXT)
    verifier.verify("ping", {}, CTXT, auth)
    with pytest.raises(bus_auth.BusAuthError, match="replayed"):
        verifier.verify("ping", {}, CTXT, dict(auth))
    for _ in range(50):
        verifier.verify("ping", {}, CTXT, bus_auth.sign("k1", "ping", {}, CTXT))
    assert len(store) <= 10


def test_two_verifiers_sharing_a_store_catch_a_replay_to_the_other() -> None:
    """What Redis gives the workers of a deployment: a message accepted by
    one verifier is a replay for every other verifier of the same store."""
    store = nonce_store.MemoryNonceStore()
    worker_a, worker_b = (bus_auth.Verifier(["k1"], 60, store) for _ in range(2))
    auth = bus_auth.sign("k1", "incr", {"n": 1}, CTXT)
    worker_a.verify("incr", {"n": 1}, CTXT, auth)
    with pytest.raises(bus_auth.BusAuthError, match="replayed"):
        worker_b.verify("incr", {"n": 1}, CTXT, dict(auth))
    # Without the shared store (what each worker had before), B runs it.
    bus_auth.Verifier(["k1"], 60).verify("incr", {"n": 1}, CTXT, dict(auth))


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_memory_store_forgets_a_nonce_when_it_expires() -> None:
    clock = _Clock()
    store = nonce_store.MemoryNonceStore(clock=clock)
    assert store.first_use("n1", expires_at=1010.0)
    clock.now = 1009.9
    assert not store.first_use("n1", expires_at=1010.0)
    clock.now = 1010.1
    assert store.first_use("n1", expires_at=1020.0)  # expired: new again
    assert len(store) == 1  # and the expired entry was dropped, not kept


def test_verifier_records_a_nonce_until_its_message_turns_stale() -> None:
    """The verifier asks the store to keep a nonce until ts + max_skew."""
    seen: list[tuple[str, float]] = []

    class Recording:
        def first_use(self, nonce: str, expires_at: float) -> bool:
            seen.append((nonce, expires_at))
            return True

        def close(self) -> None:
            pass

    auth = bus_auth.sign("k1", "ping", {}, CTXT)
    bus_auth.Verifier(["k1"], 30, Recording()).verify("ping", {}, CTXT, auth)
    assert seen == [(auth["nonce"], auth["ts"] + 30)]


class _FakeRedis:
    """Just enough of redis-py's client: SET NX PX and GET, with failures."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[bytes, int]] = {}
        self.calls = 0
        #: Exceptions the next calls raise; ``(exc, True)`` lands the SET first
        #: (a connection broken after Redis applied it).
        self.failures: list[tuple[Exception, bool]] = []
        self.closed = False

    def set(self, key: str, value: str, nx: bool, px: int) -> bool | None:
        self.calls += 1
        assert nx
        landed = True
        if self.failures:
            exc, landed = self.failures.pop(0)
            if landed and key not in self.keys:
                self.keys[key] = (value.encode(), px)
            raise exc
        if key in self.keys:
            return None
        self.keys[key] = (value.encode(), px)
        return True

    def get(self, key: str) -> bytes | None:
        self.calls += 1
        return self.keys[key][0] if key in self.keys else None

    def close(self) -> None:
        self.closed = True


def test_redis_store_sets_each_nonce_once_with_its_expiry() -> None:
    client, clock = _FakeRedis(), _Clock()
    store = nonce_store.RedisNonceStore(client, "ns:herald-bus-nonce:", margin=60, clock=clock)
    assert store.first_use("n1", expires_at=1030.0)
    assert not store.first_use("n1", expires_at=1030.0)
    # Kept until the message is stale (30 s) plus the clock margin (60 s).
    assert client.keys["ns:herald-bus-nonce:n1"][1] == 90_000
    store.close()
    assert client.closed


def test_redis_store_unreachable_rejects_then_holds_off_then_tries_again(
        caplog: pytest.LogCaptureFixture) -> None:
    client, clock = _FakeRedis(), _Clock()
    store = nonce_store.RedisNonceStore(client, "p:", margin=60, clock=clock, hold=1.0)
    refused = redis.exceptions.ConnectionError("Connection refused")
    client.failures = [(refused, False), (refused, False)]
    with caplog.at_level(logging.INFO, logger=nonce_store.LOG.name):
        with pytest.raises(nonce_store.NonceStoreUnavailable, match="refused"):
            store.first_use("n1", 1030.0)
        assert client.calls == 2  # one immediate retry on a broken connection
        # Within the hold: rejected at once, Redis not even tried.
        with pytest.raises(nonce_store.NonceStoreUnavailable):
            store.first_use("n2", 1030.0)
        assert client.calls == 2
        clock.now += 1.5
        assert store.first_use("n2", 1030.0)
    assert client.calls == 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1  # once per outage
    assert any("reachable again" in m for m in messages)


def test_redis_store_timeout_is_not_retried() -> None:
    client, clock = _FakeRedis(), _Clock()
    store = nonce_store.RedisNonceStore(client, "p:", margin=60, clock=clock)
    client.failures = [(redis.exceptions.TimeoutError("Timeout reading"), False)]
    with pytest.raises(nonce_store.NonceStoreUnavailable, match="Timeout"):
        store.first_use("n1", 1030.0)
    assert client.calls == 1


def test_redis_store_retry_after_a_landed_set_is_not_a_replay() -> None:
    """The connection broke after Redis applied the SET: the retry finds the
    key holding its own token, so the message is not rejected as a replay --
    while a real replay still is."""
    client, clock = _FakeRedis(), _Clock()
    store = nonce_store.RedisNonceStore(client, "p:", margin=60, clock=clock)
    client.failures = [(redis.exceptions.ConnectionError("reset by peer"), True)]
    assert store.first_use("n1", 1030.0)
    assert not store.first_use("n1", 1030.0)


def test_redis_store_local_policy_falls_back_to_the_process_memory() -> None:
    client, clock = _FakeRedis(), _Clock()
    store = nonce_store.RedisNonceStore(client, "p:", margin=60, clock=clock,
                                        local=nonce_store.MemoryNonceStore(clock=clock))
    assert store.first_use("before", 1030.0)  # seen while Redis answered
    client.failures = [(redis.exceptions.ConnectionError("refused"), False)] * 2
    assert store.first_use("during", 1030.0)  # Redis down: runs
    assert not store.first_use("during", 1030.0)  # a replay to this process: caught
    assert not store.first_use("before", 1030.0)  # so is one of a message from before


def test_store_is_picked_from_the_coordination_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from herald.common import config

    conf = config.load([])
    try:
        conf.set_override("backend_url", "file://data/coordination", group="coordination")
        embedded = nonce_store.from_conf(conf)
        assert isinstance(embedded, nonce_store.MemoryNonceStore)
        # One per process: the one its services share, when given.
        assert nonce_store.from_conf(conf, memory=embedded) is embedded
        conf.set_override("backend_url", "redis://127.0.0.1:6399?namespace=ns-x&db=2",
                          group="coordination")
        conf.set_override("bus_nonce_timeout", 0.05, group="rpc")
        conf.set_override("bus_nonce_unreachable", "reject", group="rpc")
        shared = nonce_store.from_conf(conf)
        assert isinstance(shared, nonce_store.RedisNonceStore)
        kwargs = shared._client.connection_pool.connection_kwargs
        assert (kwargs["port"], kwargs["db"], kwargs["socket_timeout"]) == (6399, 2, 0.05)
        assert shared._prefix == "ns-x:herald-bus-nonce:" and shared._local is None
        conf.set_override("bus_nonce_unreachable", "local", group="rpc")
        assert nonce_store.from_conf(conf)._local is not None  # type: ignore[attr-defined]
        # A fanout listener's store is its own, whatever the backend.
        fanout = nonce_store.from_conf(conf, shared=False)
        assert isinstance(fanout, nonce_store.MemoryNonceStore) and fanout is not embedded
    finally:
        for name, group in [("backend_url", "coordination"), ("bus_nonce_timeout", "rpc"),
                            ("bus_nonce_unreachable", "rpc")]:
            conf.clear_override(name, group=group)


def test_unreachable_store_is_a_503_not_a_403(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def first_use(self, nonce: str, expires_at: float) -> bool:
            raise nonce_store.NonceStoreUnavailable("bus nonce store (Redis) unreachable")

        def close(self) -> None:
            pass

    verifier = bus_auth.Verifier(["k1"], 60, Down())
    with pytest.raises(errors.ServiceUnavailable):
        verifier.check("ping", {}, CTXT, bus_auth.sign("k1", "ping", {}, CTXT))
    # A forgery is still a forgery: the store is never asked about it.
    with pytest.raises(errors.Forbidden):
        verifier.check("ping", {}, CTXT, bus_auth.sign("guess", "ping", {}, CTXT))


class _Endpoint:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def incr(self, ctxt: Any, **kwargs: Any) -> int:
        self.calls.append(kwargs)
        return len(self.calls)


def test_server_proxy_verifies_before_dispatch_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = _Endpoint()
    proxy = _TypedErrorsAreReplies(endpoint, _verifier("k1"))
    signed = bus_auth.Signer(["k1"]).add_auth("incr", CTXT, {"n": 1})
    assert proxy.incr(CTXT, **signed) == 1
    assert endpoint.calls == [{"n": 1}]  # the signature never reaches the endpoint
    import oslo_messaging

    with caplog.at_level(logging.WARNING, logger=bus_auth.LOG.name):
        for kwargs in ({"n": 1}, signed, {**signed, "n": 2}):
            with pytest.raises(oslo_messaging.ExpectedException) as info:
                proxy.incr(CTXT, **kwargs)
            assert isinstance(info.value.exc_info[1], errors.Forbidden)
    assert endpoint.calls == [{"n": 1}]
    reasons = [r.getMessage() for r in caplog.records if r.name == bus_auth.LOG.name]
    assert len(reasons) == 3 and all("incr" in r for r in reasons)
    assert "unsigned" in reasons[0] and "replayed" in reasons[1] and "bad signature" in reasons[2]


def test_without_keys_the_proxy_only_drops_the_argument() -> None:
    endpoint = _Endpoint()
    proxy = _TypedErrorsAreReplies(endpoint)
    proxy.incr(CTXT, n=1, **{bus_auth.AUTH_ARG: {"sig": "x"}})
    proxy.incr(CTXT, n=2)
    assert endpoint.calls == [{"n": 1}, {"n": 2}]


class _FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def prepare(self, **kwargs: Any) -> _FakeClient:
        return self

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        self.sent.append((method, kwargs))

    cast = call


def test_signing_client_signs_calls_and_casts_only_with_a_key(
        caplog: pytest.LogCaptureFixture) -> None:
    from herald.common import config

    conf = config.load([])
    raw = _FakeClient()
    with caplog.at_level(logging.WARNING, logger=bus_auth.LOG.name):
        unsigned = bus_auth.SigningClient.from_conf(raw, conf)
        bus_auth.warn_if_unauthenticated(conf)
    assert [r.getMessage() for r in caplog.records
            if "NOT authenticated" in r.getMessage()] != []
    caplog.clear()
    conf.set_override("bus_keys", ["k1"], group="rpc")
    try:
        with caplog.at_level(logging.WARNING, logger=bus_auth.LOG.name):
            bus_auth.warn_if_unauthenticated(conf)
        assert not [r for r in caplog.records if "NOT authenticated" in r.getMessage()]
    finally:
        conf.clear_override("bus_keys", group="rpc")
    unsigned.call(CTXT, "ping")
    signed = bus_auth.SigningClient(raw, bus_auth.Signer(["k1"]))
    signed.prepare(server="s").cast(CTXT, "push", payload=b"\x00")
    assert raw.sent[0] == ("ping", {})
    method, kwargs = raw.sent[1]
    auth = kwargs.pop(bus_auth.AUTH_ARG)
    _verifier("k1").verify(method, kwargs, CTXT, auth)


# -- signed replies ------------------------------------------------------------


def _wire(value: Any) -> Any:
    """What crossing RabbitMQ does to a payload: serialize, JSON, deserialize."""
    serializer = JsonSerializer()
    return serializer.deserialize_entity(CTXT, json.loads(json.dumps(
        serializer.serialize_entity(CTXT, value))))


RESULT = {"messages": [{"id": "m1", "body": b"\x00\xff", "ttl": 60, "age": 1.5}], "n": 3}


def test_reply_verifies_after_the_wire_and_is_bound_to_its_call() -> None:
    worker, caller = _verifier("k1"), bus_auth.Signer(["k1"])
    reply = _wire(worker.reply("message_list", "nonce-1", result=RESULT))
    assert caller.open_reply("message_list", "nonce-1", reply) == RESULT
    with pytest.raises(bus_auth.BusAuthError, match="another call"):
        caller.open_reply("message_list", "nonce-2", reply)  # a genuine reply, replayed
    with pytest.raises(bus_auth.BusAuthError, match="another call"):
        caller.open_reply("queue_list", "nonce-1", reply)
    tampered = {**reply, "result": {**RESULT, "n": 4}}
    with pytest.raises(bus_auth.BusAuthError, match="another call"):
        caller.open_reply("message_list", "nonce-1", tampered)


@pytest.mark.parametrize("reply, reason", [
    (RESULT, "unsigned"),
    (None, "unsigned"),
    ({"result": 1}, "unsigned"),
    ({bus_auth.REPLY_KEY: "x", "result": 1}, "malformed"),
    ({bus_auth.REPLY_KEY: {"v": 1, "kid": "k", "sig": "s"}, "result": 1, "error": {}},
     "malformed"),
    ({bus_auth.REPLY_KEY: {"v": 9, "kid": "k", "sig": "s"}, "result": 1}, "malformed"),
])
def test_unsigned_and_malformed_replies_are_rejected(reply: Any, reason: str) -> None:
    with pytest.raises(bus_auth.BusAuthError, match=reason):
        bus_auth.Signer(["k1"]).open_reply("ping", "n", reply)


def test_forged_reply_with_another_key_is_rejected() -> None:
    forged = bus_auth.sign_reply("guess", "ping", "n", {"result": True})
    with pytest.raises(bus_auth.BusAuthError, match="unknown key"):
        bus_auth.Signer(["k1"]).open_reply("ping", "n", forged)
    # A known key id with a made-up signature.
    forged[bus_auth.REPLY_KEY]["kid"] = bus_auth.key_id("k1")
    with pytest.raises(bus_auth.BusAuthError, match="another call"):
        bus_auth.Signer(["k1"]).open_reply("ping", "n", forged)


def test_reply_errors_are_signed_and_raised_as_their_type() -> None:
    reply = _wire(_verifier("k1").reply("queue_get", "n", error=errors.QueueDoesNotExist.of(
        "q", "p")))
    with pytest.raises(errors.QueueDoesNotExist, match="Queue q does not exist"):
        bus_auth.Signer(["k1"]).open_reply("queue_get", "n", reply)
    # An error cannot be swapped for another one either.
    swapped = {**reply, "error": {**reply["error"], "class": "Forbidden"}}
    with pytest.raises(bus_auth.BusAuthError):
        bus_auth.Signer(["k1"]).open_reply("queue_get", "n", swapped)


def test_rotation_replies_first_key_signs_every_key_verifies() -> None:
    """Step 2 of a rotation: workers already sign with the new key first,
    edges still list the old key first; and the other way round."""
    new_first = bus_auth.Verifier(["new", "old"], 60).reply("ping", "n", result=True)
    old_first = bus_auth.Verifier(["old", "new"], 60).reply("ping", "n", result=True)
    assert new_first[bus_auth.REPLY_KEY]["kid"] == bus_auth.key_id("new")
    for caller in (bus_auth.Signer(["old", "new"]), bus_auth.Signer(["new", "old"])):
        assert caller.open_reply("ping", "n", new_first) is True
        assert caller.open_reply("ping", "n", old_first) is True
    # Step 3: the old key dropped -- its replies are no longer believed.
    with pytest.raises(bus_auth.BusAuthError, match="unknown key"):
        bus_auth.Signer(["new"]).open_reply("ping", "n", old_first)


class _Failing:
    target = None

    def boom(self, ctxt: Any) -> None:
        raise ValueError("a storage bug")

    def missing(self, ctxt: Any) -> None:
        raise errors.NotFound("no such thing")


def test_proxy_returns_every_outcome_of_a_verified_call_signed() -> None:
    import oslo_messaging

    endpoint = _Endpoint()
    proxy = _TypedErrorsAreReplies(endpoint, _verifier("k1"))
    caller = bus_auth.Signer(["k1"])
    auth = caller.sign("incr", CTXT, {"n": 1}, reply=True)
    reply = proxy.incr(CTXT, n=1, **{bus_auth.AUTH_ARG: auth})
    assert caller.open_reply("incr", auth["nonce"], _wire(reply)) == 1

    failing = _TypedErrorsAreReplies(_Failing(), _verifier("k1"))
    auth = caller.sign("missing", CTXT, {}, reply=True)
    reply = failing.missing(CTXT, **{bus_auth.AUTH_ARG: auth})
    with pytest.raises(errors.NotFound, match="no such thing"):
        caller.open_reply("missing", auth["nonce"], _wire(reply))
    auth = caller.sign("boom", CTXT, {}, reply=True)
    reply = failing.boom(CTXT, **{bus_auth.AUTH_ARG: auth})
    with pytest.raises(errors.InternalError, match="ValueError: a storage bug"):
        caller.open_reply("boom", auth["nonce"], _wire(reply))
    # A cast (no reply asked for) keeps the plain behaviour: a typed error is
    # oslo's expected failure, the value is the endpoint's own.
    with pytest.raises(oslo_messaging.ExpectedException):
        failing.missing(CTXT, **{bus_auth.AUTH_ARG: caller.sign("missing", CTXT, {})})
    assert proxy.incr(CTXT, n=2, **{bus_auth.AUTH_ARG: caller.sign("incr", CTXT, {"n": 2})}) == 2


def test_proxy_answers_a_replay_check_outage_with_a_signed_503() -> None:
    class Down:
        def first_use(self, nonce: str, expires_at: float) -> bool:
            raise nonce_store.NonceStoreUnavailable("down")

        def close(self) -> None:
            pass

    endpoint = _Endpoint()
    proxy = _TypedErrorsAreReplies(endpoint, bus_auth.Verifier(["k1"], 60, Down()))
    caller = bus_auth.Signer(["k1"])
    auth = caller.sign("incr", CTXT, {"n": 1}, reply=True)
    reply = proxy.incr(CTXT, n=1, **{bus_auth.AUTH_ARG: auth})
    with pytest.raises(errors.ServiceUnavailable) as info:
        caller.open_reply("incr", auth["nonce"], _wire(reply))
    assert type(info.value) is errors.ServiceUnavailable
    assert endpoint.calls == []


class _LoopbackClient:
    """An oslo RPCClient stand-in: the request and the reply cross the
    serializer and JSON; ``tamper`` may change the reply on its way back."""

    def __init__(self, proxy: Any, tamper: Any = None) -> None:
        self._proxy = proxy
        self._tamper = tamper
        self.sent: list[dict[str, Any]] = []

    def prepare(self, **kwargs: Any) -> _LoopbackClient:
        return self

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        reply = _wire(getattr(self._proxy, method)(ctxt, **_wire(kwargs)))
        return reply if self._tamper is None else self._tamper(reply)


def test_signing_client_returns_verified_results_and_rejects_anything_else(
        caplog: pytest.LogCaptureFixture) -> None:
    import oslo_messaging

    endpoint = _Endpoint()
    proxy = _TypedErrorsAreReplies(endpoint, _verifier("k1"))
    signer = bus_auth.Signer(["k1"])
    assert bus_auth.SigningClient(_LoopbackClient(proxy), signer).call(CTXT, "incr", n=1) == 1

    def forge(reply: Any) -> Any:
        return {**reply, "result": 999}

    captured = _LoopbackClient(proxy)
    bus_auth.SigningClient(captured, signer).call(CTXT, "incr", n=1)
    genuine = _wire(bus_auth.Verifier(["k1"], 60).reply(
        "incr", captured.sent[0][bus_auth.AUTH_ARG]["nonce"], result=999))
    with caplog.at_level(logging.WARNING, logger=bus_auth.LOG.name):
        for tamper in (forge, lambda reply: 999, lambda reply: genuine):
            with pytest.raises(bus_auth.UnverifiedReply) as info:
                bus_auth.SigningClient(_LoopbackClient(proxy, tamper), signer).call(
                    CTXT, "incr", n=1)
            assert info.value.status == 503

        # An oslo failure reply (rebuilt remote exception) is not believed
        # either: a worker with keys signs its errors.
        class NotFound_Remote(errors.NotFound):  # noqa: N801 -- oslo's naming
            pass

        class Remote:
            def prepare(self, **kwargs: Any) -> Remote:
                return self

            def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
                raise NotFound_Remote("forged")

        with pytest.raises(bus_auth.UnverifiedReply):
            bus_auth.SigningClient(Remote(), signer).call(CTXT, "incr", n=1)
    reasons = [r.getMessage() for r in caplog.records if r.name == bus_auth.LOG.name]
    assert len(reasons) == 4 and all("incr" in r and "req-1" in r for r in reasons)
    assert "another call" in reasons[0] and "unsigned reply" in reasons[1]
    assert "another call" in reasons[2] and "unsigned failure reply" in reasons[3]

    class Timeout:
        def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
            raise oslo_messaging.MessagingTimeout("no answer")

    # A local failure is the caller's usual business, not a forgery.
    with pytest.raises(oslo_messaging.MessagingTimeout):
        bus_auth.SigningClient(Timeout(), signer).call(CTXT, "incr", n=1)
    # Without keys: nothing is signed, nothing verified, the raw value returned.
    plain = _TypedErrorsAreReplies(_Endpoint())
    assert bus_auth.SigningClient(_LoopbackClient(plain), None).call(CTXT, "incr", n=1) == 1
