"""Unit: signing and verifying bus messages (``herald.common.rpc.bus_auth``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc import bus_auth
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
    verifier = bus_auth.Verifier(["k1"], 60, max_nonces=10)
    auth = bus_auth.sign("k1", "ping", {}, CTXT)
    verifier.verify("ping", {}, CTXT, auth)
    with pytest.raises(bus_auth.BusAuthError, match="replayed"):
        verifier.verify("ping", {}, CTXT, dict(auth))
    for _ in range(50):
        verifier.verify("ping", {}, CTXT, bus_auth.sign("k1", "ping", {}, CTXT))
    assert len(verifier._nonces) <= 10


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
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from herald.common import config

    conf = config.load([])
    raw = _FakeClient()
    monkeypatch.setattr(bus_auth, "_warned", False)
    with caplog.at_level(logging.WARNING, logger=bus_auth.LOG.name):
        unsigned = bus_auth.SigningClient.from_conf(raw, conf)
        bus_auth.warn_if_unauthenticated(conf)  # once per process
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if "NOT authenticated" in r.getMessage())) == 1
    unsigned.call(CTXT, "ping")
    signed = bus_auth.SigningClient(raw, bus_auth.Signer(["k1"]))
    signed.prepare(server="s").cast(CTXT, "push", payload=b"\x00")
    assert raw.sent[0] == ("ping", {})
    method, kwargs = raw.sent[1]
    auth = kwargs.pop(bus_auth.AUTH_ARG)
    _verifier("k1").verify(method, kwargs, CTXT, auth)
