"""Integration: forged messages injected straight into RabbitMQ have no effect.

A real ``RPCServer`` with a storage-like endpoint listens on a topic of its
own, keys configured. A signed ``OsloCaller`` call works and a wrong-key
caller gets a typed 403. Then oslo.messaging-format messages are published
with kombu directly (exchange ``control_exchange``, routing key = topic,
body = ``{"oslo.version": "2.0", "oslo.message": <json>}``): a correctly
signed one runs (so the format is right), while unsigned, wrong-key and
replayed ones are rejected -- the endpoint's state does not change and a
WARNING names the method and the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import oslo_messaging
import pytest

from herald.common import config, errors
from herald.common.context import RequestContext
from herald.common.rpc import STORAGE_API_VERSION, bus_auth
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.server import RPCServer

pytestmark = [pytest.mark.rabbit]

KEY = "integration-bus-auth-key"


class _Counter:
    """Storage-like endpoint whose only method changes state."""

    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    def __init__(self) -> None:
        self.total = 0

    def ping(self, ctxt: Any) -> bool:
        return True

    def add(self, ctxt: Any, n: int) -> int:
        self.total += n
        return self.total


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def setup(rabbit_url: str) -> Iterator[tuple[Any, _Counter, _Records, str]]:
    conf = config.load([])
    topic = f"herald-bus-auth-{uuid.uuid4().hex[:8]}"
    conf.set_override("transport_url", rabbit_url)
    conf.set_override("topic", topic, group="rpc")
    conf.set_override("call_timeout", 5, group="rpc")
    conf.set_override("bus_keys", [KEY, "older-key"], group="rpc")
    counter = _Counter()
    records = _Records()
    bus_auth.LOG.addHandler(records)
    server = RPCServer(conf, topic, f"server-{uuid.uuid4().hex[:6]}", [counter])
    server.start()
    try:
        yield conf, counter, records, topic
    finally:
        server.stop()
        bus_auth.LOG.removeHandler(records)
        for name, group in [("transport_url", None), ("topic", "rpc"),
                            ("call_timeout", "rpc"), ("bus_keys", "rpc")]:
            conf.clear_override(name, group=group)


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _publish(rabbit_url: str, exchange: str, topic: str, method: str,
             args: dict[str, Any], ctxt: RequestContext) -> None:
    """Publish a cast exactly as oslo.messaging's rabbit driver would."""
    msg: dict[str, Any] = {"method": method, "args": args, "namespace": None,
                           "version": STORAGE_API_VERSION, "_unique_id": uuid.uuid4().hex}
    msg.update({f"_context_{k}": v for k, v in ctxt.to_dict().items()})
    body = {"oslo.version": "2.0", "oslo.message": json.dumps(msg)}
    with kombu.Connection(rabbit_url.replace("rabbit://", "amqp://", 1)) as conn:
        conn.Producer().publish(body, exchange=exchange, routing_key=topic, serializer="json")


def test_signed_calls_work_and_forged_bus_messages_have_no_effect(setup, rabbit_url) -> None:
    conf, counter, records, topic = setup
    ctxt = RequestContext(project_id="p1", client_id="c1")

    async def calls(caller: OsloCaller) -> Any:
        return await caller.call(ctxt, "add", n=1)

    caller = OsloCaller(conf)
    try:
        assert caller.wait_connected(5)
        assert asyncio.run(calls(caller)) == 1
    finally:
        caller.stop()

    # A caller with a key the server does not know: no effect. The worker
    # answers a plain 403 it cannot sign for a request it does not trust, so
    # the caller does not believe that either: a 503 (the fault is the
    # deployment's, not the client's), and both sides log why.
    conf.set_override("bus_keys", ["wrong-key"], group="rpc")
    intruder = OsloCaller(conf)
    conf.set_override("bus_keys", [KEY, "older-key"], group="rpc")
    try:
        assert intruder.wait_connected(5)
        with pytest.raises(errors.ServiceUnavailable):
            asyncio.run(calls(intruder))
    finally:
        intruder.stop()
    assert counter.total == 1
    assert any("add" in m and "unknown key" in m for m in records.messages)
    assert any("reply to bus call add" in m and "unsigned failure reply (Forbidden" in m
               for m in records.messages)

    exchange = conf.control_exchange
    # Control: a correctly signed injected message (signed with the second,
    # older key: rotation) runs, so the format below is what oslo expects.
    valid = bus_auth.sign("older-key", "add", {"n": 10}, ctxt)
    _publish(rabbit_url, exchange, topic, "add", {"n": 10, bus_auth.AUTH_ARG: valid}, ctxt)
    assert _wait(lambda: counter.total == 11)

    forged = [
        ("unsigned", {"n": 100}, ctxt),
        ("unknown key", {"n": 100, bus_auth.AUTH_ARG: bus_auth.sign("guess", "add",
                                                                    {"n": 100}, ctxt)}, ctxt),
        ("bad signature", {"n": 100, bus_auth.AUTH_ARG: {**bus_auth.sign(KEY, "add", {"n": 1},
                                                                         ctxt)}}, ctxt),
        ("replayed", {"n": 10, bus_auth.AUTH_ARG: valid}, ctxt),  # the captured valid one
        ("stale", {"n": 100, bus_auth.AUTH_ARG: bus_auth.sign(
            KEY, "add", {"n": 100}, ctxt, ts=time.time() - 600)}, ctxt),
    ]
    for reason, args, c in forged:
        before = len(records.messages)
        _publish(rabbit_url, exchange, topic, "add", args, c)
        assert _wait(lambda b=before: len(records.messages) > b), reason
        assert reason in records.messages[-1] and "add" in records.messages[-1]
    # Each forgery was handled (its refusal is logged above, by the server
    # that would have run it) and none ran: no sleep needed to see nothing.
    assert counter.total == 11
