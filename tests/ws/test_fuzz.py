"""Hypothesis-driven fuzz of websocket frames against a gateway.

Random request envelopes (known and unknown actions, headers and bodies of
the wrong types, huge integers, floats that are not numbers, deep nesting,
long strings) sent as JSON text frames and as msgpack binary frames, plus
raw frames (random bytes, text that is not JSON, text frames that are not
UTF-8). For each frame the gateway must:

- answer exactly once, in the frame kind of the request, with a 4xx status
  for what is the client's fault (a 5xx would say the server broke; the
  storage behind this gateway is healthy, so none is expected at all);
- or, for a frame the websocket protocol itself forbids (a text frame that
  is not UTF-8), fail that connection (close 1007, or drop it as Tornado
  does) -- and no other frame may;
- never log a crashed request;
- stay up: a normal request on a fresh connection works afterwards.

Bounded: ``HERALD_WS_FUZZ_EXAMPLES`` (default 300) examples per frame kind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import string
from typing import Any

import msgpack
import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.ws_gateway.service import WSGatewayService
from tests.ws.client import WSClient
from tests.ws.conftest import ws_url

EXAMPLES = int(os.environ.get("HERALD_WS_FUZZ_EXAMPLES", "300"))
REPLY_TIMEOUT = 10.0
HEADERS = {"Client-ID": "0d7e9ae8-6d5c-4bb4-a0e4-0f5d6f2c3b1a", "X-Project-ID": "fuzz"}

ACTIONS = [
    "authenticate", "queue_list", "queue_create", "queue_get", "queue_delete",
    "queue_get_stats", "queue_purge", "message_list", "message_get", "message_get_many",
    "message_post", "message_delete", "message_delete_many", "claim_create", "claim_get",
    "claim_update", "claim_delete", "subscription_create", "subscription_list",
    "subscription_get", "subscription_delete", "get_home_doc", "ping_node", "pool_list",
]
FIELDS = [
    "queue_name", "message_id", "message_ids", "claim_id", "claim_ids", "subscription_id",
    "marker", "limit", "detailed", "echo", "include_claimed", "include_delayed", "messages",
    "ttl", "grace", "delay", "pop", "metadata", "resource_types", "subscriber", "options",
    "body", "_default_message_delay", "confirmed",
]
# The test harness's caller fails queues named down-*/bug-*/slow-* on purpose;
# the fuzz must not pick those prefixes by chance.
QUEUE_NAMES = st.sampled_from(["fuzz", "fuzz_2", "a" * 64, "a" * 65, "", "bad name", "ü",
                               "fuzz.q", "x/y"])

_huge = st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64, -(2**64), 10**30, 2**31, -1, 0])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), _huge,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.text(alphabet=string.printable, min_size=200, max_size=2000),
)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                            inner, max_size=4)),
    max_leaves=12,
) | st.sampled_from([_nested(100), _nested(600), _nested(3000)])

_message = st.fixed_dictionaries({}, optional={"body": _values, "ttl": _values,
                                               "delay": _values})
_body = st.one_of(
    st.fixed_dictionaries({}, optional={
        **{field: _values for field in FIELDS},
        "queue_name": QUEUE_NAMES | _values,
        "messages": st.lists(_message, max_size=3) | _values,
        "limit": st.integers(-5, 30) | _huge,
        "ttl": st.integers(-5, 50000) | _huge,
    }),
    _values,
)
_headers = st.one_of(
    st.fixed_dictionaries({"Client-ID": st.uuids().map(str), "X-Project-ID": st.just("fuzz")}),
    st.fixed_dictionaries({}, optional={"Client-ID": _values, "X-Project-ID": _values,
                                        "X-Auth-Token": _values, "URL-Signature": _values}),
    _values,
)
_VALID_HEADERS = st.fixed_dictionaries({"Client-ID": st.uuids().map(str),
                                        "X-Project-ID": st.just("fuzz")})
# Mostly well-formed requests with hostile field values, so that frames get
# past decoding and the schema into the actions and the storage.
_PLAUSIBLE = st.fixed_dictionaries({
    "action": st.sampled_from(ACTIONS),
    "headers": _VALID_HEADERS,
    "body": st.fixed_dictionaries({"queue_name": QUEUE_NAMES}, optional={
        "messages": st.lists(_message, min_size=1, max_size=3),
        "message_id": st.text(max_size=30) | _values,
        "message_ids": st.lists(st.text(max_size=30), max_size=25),
        "claim_id": st.text(max_size=30) | _values,
        "limit": st.integers(-5, 30) | _huge,
        "ttl": st.integers(-5, 50000) | _huge,
        "grace": st.integers(-5, 50000) | _huge,
        "pop": st.integers(-5, 30) | _huge,
        "metadata": st.dictionaries(st.text(max_size=30), _values, max_size=4),
        "subscriber": st.sampled_from(["http://127.0.0.1:9/h", "mailto:a@b.c", "x"]) | _values,
        "options": _values,
        "marker": _values,
        "echo": _values,
        "include_claimed": _values,
        "resource_types": _values,
    }),
})
ENVELOPES = _PLAUSIBLE | st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(ACTIONS) | _values,
    "headers": _headers,
    "body": _body,
}) | _values


def _json_frame(payload: Any) -> str | None:
    try:
        return json.dumps(payload)  # NaN/Infinity become the non-standard literals
    except (ValueError, RecursionError):
        return None


def _msgpack_frame(payload: Any) -> bytes | None:
    try:
        return msgpack.packb(payload, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):
        return None  # not representable in msgpack (e.g. 2**64, too deep)


class Fuzzer:
    """One websocket connection, reopened when the gateway closes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: websocket.WebSocket | None = None
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def _connection(self) -> websocket.WebSocket:
        if self.ws is None or not self.ws.connected:
            self.ws = websocket.create_connection(self.url, timeout=REPLY_TIMEOUT)
        return self.ws

    def exchange(self, frame: str | bytes, *, opcode: int | None = None) -> None:
        ws = self._connection()
        binary = isinstance(frame, bytes) and opcode is None
        if opcode is not None:
            ws.send(frame, opcode=opcode)
        elif binary:
            ws.send_binary(frame)
        else:
            ws.send(frame)
        self.sent += 1
        invalid_text = opcode == websocket.ABNF.OPCODE_TEXT
        try:
            kind, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            pytest.fail(f"no reply within {REPLY_TIMEOUT:.0f} s to {frame[:300]!r}")
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            # Tornado fails a connection that sent a non-UTF-8 text frame
            # (RFC 6455 8.1) by dropping it; nothing else may drop one.
            self.ws = None
            assert invalid_text, f"connection dropped after {frame[:300]!r}"
            return
        if kind == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            self.ws = None
            # Only a text frame that is not UTF-8 may close the connection.
            assert invalid_text and code == 1007, (
                f"connection closed with {code} {data[2:]!r} after {frame[:300]!r}")
            return
        assert kind == (websocket.ABNF.OPCODE_BINARY if binary else websocket.ABNF.OPCODE_TEXT), (
            f"reply in the wrong frame kind to {frame[:300]!r}")
        reply = msgpack.unpackb(data, raw=False) if binary else json.loads(data)
        status = reply["headers"]["status"]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert isinstance(status, int) and status < 500, (
            f"{status} {reply.get('body')!r} for {frame[:300]!r}")

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


@pytest.fixture(scope="module")
def fuzzer(gateway: WSGatewayService) -> Any:
    f = Fuzzer(ws_url(gateway))
    yield f
    f.close()


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _no_crashed_requests(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.ERROR, logger="herald")
    yield
    crashed = [r.getMessage() for r in caplog.records
               if r.levelno >= logging.ERROR and r.name.startswith("herald")]
    assert not crashed, crashed[:5]


@_SETTINGS
@given(payload=ENVELOPES)
def test_json_frames(fuzzer: Fuzzer, payload: Any) -> None:
    frame = _json_frame(payload)
    if frame is not None:
        fuzzer.exchange(frame)


@_SETTINGS
@given(payload=ENVELOPES)
def test_msgpack_frames(fuzzer: Fuzzer, payload: Any) -> None:
    frame = _msgpack_frame(payload)
    if frame is not None:
        fuzzer.exchange(frame)


@settings(max_examples=max(50, EXAMPLES // 3), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), text=st.text(max_size=300))
def test_raw_frames(fuzzer: Fuzzer, raw: bytes, text: str) -> None:
    fuzzer.exchange(raw)  # random bytes as msgpack
    fuzzer.exchange(text)  # random text as JSON
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        fuzzer.exchange(raw, opcode=websocket.ABNF.OPCODE_TEXT)  # not UTF-8: 1007


@pytest.mark.parametrize("frame", [
    "[" * 100_000,
    json.dumps({"action": "queue_create", "body": {"queue_name": "fuzz",
                                                   "metadata": {"n": 10**40}}}),
    json.dumps({"action": "message_post", "headers": HEADERS,
                "body": {"queue_name": "fuzz", "messages": [{"body": math.nan}]}}),
    b"\xc1",  # never used in msgpack
    b"\x92\x01",  # truncated array
    msgpack.packb({"action": "message_post", "body": {"queue_name": "fuzz", "messages": [
        {"body": _nested(1000)}]}, "headers": HEADERS}),
], ids=["deep-json", "huge-int", "nan-body", "bad-msgpack", "truncated", "deep-msgpack"])
def test_known_nasty_frames(fuzzer: Fuzzer, frame: str | bytes) -> None:
    fuzzer.exchange(frame)


def test_gateway_still_serves_after_the_fuzz(gateway: WSGatewayService, fuzzer: Fuzzer,
                                             project: str) -> None:
    fuzzer.close()
    with WSClient(ws_url(gateway), project) as client:
        status, body = client.status_body("queue_create", {"queue_name": "after-fuzz"})
        assert status == 201, body
        status, body = client.status_body("message_post", {
            "queue_name": "after-fuzz", "messages": [{"body": {"ok": True}, "ttl": 60}]})
        assert status == 201, body
    print(f"\nws fuzz: {fuzzer.sent} frames, statuses {sorted(fuzzer.statuses.items())}")
