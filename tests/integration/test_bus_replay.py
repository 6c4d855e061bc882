"""Integration: replays across workers, and forged or replayed replies, injected with kombu.

Real RabbitMQ, Redis (the nonce store, through ``[coordination]
backend_url``) and, for the cross-worker replay, two real ``StorageWorker``
components on PostgreSQL. Messages are captured on a *mirror queue* bound to
the same exchange and routing key as the target (RabbitMQ copies every
publish to each bound queue), then published again with kombu exactly as
oslo.messaging's rabbit driver would: requests to ``control_exchange`` with
the topic (``<topic>`` for the pool, ``<topic>.<server>`` for one worker) as
routing key; replies to the default exchange with the caller's
``reply_<uuid>`` queue as routing key, body ``{"oslo.version": "2.0",
"oslo.message": <json of {"result", "failure", "ending", "_msg_id",
"_unique_id"}>}``.

- A signed call accepted by worker A is rejected when replayed inside the
  skew window to worker B (and to the pool): the storage holds one message,
  not two, and each rejection is logged as a replay.
- While a call is pending, replies published to the caller's reply queue --
  unsigned, signed with a key the deployment does not have, a *genuine*
  signed reply captured from another call, an unsigned typed failure -- are
  refused: the edge's ``OsloCaller`` raises ``ServiceUnavailable`` (503) at
  once, never the forged value or error.
- With Redis unreachable the worker fails closed (a signed 503, the method
  not run) with ``bus_nonce_unreachable = reject``, and runs the call with
  ``local`` (the default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import oslo_messaging
import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, STORAGE_API_VERSION, bus_auth
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.serializer import JsonSerializer
from herald.common.rpc.server import RPCServer
from herald.common.rpc.storage_api import StorageAPI
from tests.integration.test_storage_worker import api, conf, workers  # noqa: F401 fixtures

pytestmark = [pytest.mark.rabbit, pytest.mark.redis]

KEY = "integration-bus-key"  # what tests.integration.test_storage_worker's conf uses


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    bus_auth.LOG.addHandler(handler)
    yield handler
    bus_auth.LOG.removeHandler(handler)


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _amqp(rabbit_url: str) -> str:
    return rabbit_url.replace("rabbit://", "amqp://", 1)


class _Tap:
    """A queue of the test's own on the broker: bound to an exchange as a
    mirror of some routing key, or a plain queue replies are sent to."""

    def __init__(self, rabbit_url: str) -> None:
        self.conn = kombu.Connection(_amqp(rabbit_url))
        self.channel = self.conn.channel()
        self.name = f"herald-test-tap-{uuid.uuid4().hex[:8]}"
        # Exclusive: gone with the connection, whatever happens to the test.
        self.channel.queue_declare(queue=self.name, exclusive=True)

    def bind(self, exchange: str, routing_key: str) -> _Tap:
        self.channel.queue_bind(queue=self.name, exchange=exchange, routing_key=routing_key)
        return self

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message's body (the oslo envelope), as published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.channel.basic_get(queue=self.name, no_ack=True)
            if message is not None:
                return json.loads(message.body)
            time.sleep(0.01)
        raise AssertionError(f"nothing arrived on {self.name} within {timeout} s")

    def publish(self, body: dict[str, Any], exchange: str, routing_key: str) -> None:
        self.conn.Producer(channel=self.channel).publish(
            body, exchange=exchange, routing_key=routing_key, serializer="json")

    def close(self) -> None:
        self.channel.close()
        self.conn.release()


@pytest.fixture
def tap(rabbit_url: str) -> Iterator[Callable[[], _Tap]]:
    taps: list[_Tap] = []

    def make() -> _Tap:
        taps.append(_Tap(rabbit_url))
        return taps[-1]

    yield make
    for t in taps:
        t.close()


def _oslo(envelope: dict[str, Any]) -> dict[str, Any]:
    return json.loads(envelope["oslo.message"])


def _envelope(message: dict[str, Any]) -> dict[str, Any]:
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


def _ctxt() -> RequestContext:
    return RequestContext(project_id=f"proj-{uuid.uuid4().hex[:6]}", client_id=str(uuid.uuid4()))


# -- (a) a call replayed to another worker ---------------------------------------


@pytest.mark.postgres
def test_a_call_replayed_to_another_worker_is_rejected(
        workers, conf, api: StorageAPI, tap, records: _Records) -> None:  # noqa: F811
    worker_a, worker_b = workers(), workers()
    topic, exchange = conf.rpc.topic, conf.control_exchange
    mirror = tap().bind(exchange, f"{topic}.{worker_a.member_id}")
    transport = oslo_messaging.get_rpc_transport(conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)
    try:
        # A genuine signed call, aimed at worker A.
        client = bus_auth.SigningClient.from_conf(oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic, server=worker_a.member_id,
                                             version=STORAGE_API_VERSION),
            serializer=JsonSerializer(), timeout=10), conf)
        ctxt = _ctxt()
        ids = client.call(ctxt, "message_post", queue="q",
                          messages=[{"body": "only once", "ttl": 300}], body_size=9)
    finally:
        transport.cleanup()
    assert len(ids) == 1
    captured = mirror.next()
    request = _oslo(captured)
    assert request["method"] == "message_post" and bus_auth.AUTH_ARG in request["args"]

    # Within the skew window: the very same bytes to worker B's own queue; and
    # to the pool (either worker) with a new ``_unique_id``, which is outside
    # the signature: oslo.messaging's own duplicate filter (per process) would
    # otherwise drop it on A before Herald's check sees it.
    mirror.publish(captured, exchange, f"{topic}.{worker_b.member_id}")
    mirror.publish(_envelope({**request, "_unique_id": uuid.uuid4().hex}), exchange, topic)

    def replays_rejected() -> int:
        return sum("message_post" in m and "replayed nonce" in m for m in records.messages)

    assert _wait(lambda: replays_rejected() == 2), records.messages
    page = asyncio.run(api.message_list(ctxt, "q", None, 10, True, False, False))
    assert [m["body"] for m in page["messages"]] == ["only once"]
    assert [m["id"] for m in page["messages"]] == ids


# -- (b) forged and replayed replies ------------------------------------------------


class _Held:
    """An endpoint whose ``hold`` answers only when the test releases it, so
    a call stays pending while the test publishes replies to its caller."""

    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def _event(self, tag: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(tag, threading.Event())

    def release(self, tag: str) -> None:
        self._event(tag).set()

    def ping(self, ctxt: Any) -> bool:
        return True

    def hold(self, ctxt: Any, tag: str) -> str:
        if tag.startswith("block"):
            self._event(tag).wait(15)
        return f"genuine-{tag}"

    def add(self, ctxt: Any, n: int) -> int:
        return n + 1


@pytest.fixture
def held(rpc_conf: Any, rpc_topic: str, redis_coordination_url: str) -> Iterator[
        tuple[Any, _Held, str]]:
    """An RPC server with ``_Held`` on a signed bus, nonces in Redis."""
    rpc_conf.set_override("bus_keys", [KEY], group="rpc")
    rpc_conf.set_override("backend_url", redis_coordination_url, group="coordination")
    endpoint = _Held()
    server_id = f"held-{uuid.uuid4().hex[:6]}"
    server = RPCServer(rpc_conf, rpc_topic, server_id, [endpoint])
    server.start()
    try:
        yield rpc_conf, endpoint, server_id
    finally:
        for tag in list(endpoint._events):
            endpoint.release(tag)
        server.stop()
        rpc_conf.clear_override("bus_keys", group="rpc")
        rpc_conf.clear_override("backend_url", group="coordination")


def _genuine_reply(tap: _Tap, exchange: str, topic: str, method: str,
                   kwargs: dict[str, Any]) -> dict[str, Any]:
    """A genuine signed reply of the worker, to a call of our own: a request
    signed with the deployment's key, its reply queue the tap."""
    ctxt = _ctxt()
    auth = bus_auth.Signer([KEY]).sign(method, ctxt, kwargs, reply=True)
    request = {"method": method, "args": {**kwargs, bus_auth.AUTH_ARG: auth},
               "namespace": None, "version": STORAGE_API_VERSION,
               "_unique_id": uuid.uuid4().hex, "_msg_id": uuid.uuid4().hex,
               "_reply_q": tap.name, "_timeout": None}
    request.update({f"_context_{k}": v for k, v in ctxt.to_dict().items()})
    tap.publish(_envelope(request), exchange, topic)
    reply = _oslo(tap.next())
    assert reply["result"][bus_auth.REPLY_KEY]  # signed by the worker
    return reply


def test_forged_and_replayed_replies_are_rejected_by_the_caller(
        held, rpc_topic: str, tap, records: _Records) -> None:
    rpc_conf, endpoint, _ = held
    exchange = rpc_conf.control_exchange
    mirror = tap().bind(exchange, rpc_topic)  # every request sent to the pool
    caller = OsloCaller(rpc_conf)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        assert caller.wait_connected(5)
        ctxt = _ctxt()
        assert asyncio.run(caller.call(ctxt, "hold", tag="warm")) == "genuine-warm"
        # A genuine reply, signed by the worker with the deployment's key --
        # for another call (same method, another nonce).
        genuine = _genuine_reply(tap(), exchange, rpc_topic, "hold", {"tag": "other"})
        assert genuine["result"]["result"] == "genuine-other"
        failure = json.dumps({"class": "QueueDoesNotExist", "module": "herald.common.errors",
                              "message": "forged", "tb": [], "args": ["forged"], "kwargs": {}})
        cases: list[tuple[str, Callable[[str, str], dict[str, Any]], str]] = [
            ("unsigned result", lambda nonce, msg_id: {"result": "forged", "failure": None},
             "unsigned reply"),
            ("signed with another key", lambda nonce, msg_id: {
                "result": bus_auth.sign_reply("attacker-key", "hold", nonce,
                                              {"result": "forged"}), "failure": None},
             "unknown key"),
            ("genuine reply of another call", lambda nonce, msg_id: {
                "result": genuine["result"], "failure": None}, "another call"),
            ("unsigned typed failure", lambda nonce, msg_id: {
                "result": None, "failure": failure}, "unsigned failure reply"),
        ]
        for i, (name, forge, reason) in enumerate(cases):
            tag = f"block-{i}"
            started = time.monotonic()
            pending = pool.submit(lambda t=tag: asyncio.run(caller.call(ctxt, "hold", tag=t)))
            request = _oslo(mirror.next())
            while request["args"].get("tag") != tag:  # earlier requests of the pool
                request = _oslo(mirror.next())
            nonce = request["args"][bus_auth.AUTH_ARG]["nonce"]
            forged = {**forge(nonce, request["_msg_id"]), "ending": True,
                      "_msg_id": request["_msg_id"], "_unique_id": uuid.uuid4().hex}
            mirror.publish(_envelope(forged), "", request["_reply_q"])
            with pytest.raises(errors.ServiceUnavailable) as info:
                pending.result(timeout=8)
            assert isinstance(info.value, bus_auth.UnverifiedReply), name
            # Answered by the forged reply, well before the call's timeout,
            # while the genuine one was still held.
            assert time.monotonic() - started < rpc_conf.rpc.call_timeout / 2, name
            assert any(f"reply to bus call hold (request {ctxt.request_id})" in m
                       and reason in m for m in records.messages), (name, records.messages)
            endpoint.release(tag)  # its genuine reply now arrives late and is dropped
        # The caller still takes genuine replies.
        assert asyncio.run(caller.call(ctxt, "hold", tag="after")) == "genuine-after"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        caller.stop()


# -- fail closed (and open to local memory) when Redis is unreachable --------------


class _Counting:
    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    def __init__(self) -> None:
        self.total = 0

    def ping(self, ctxt: Any) -> bool:
        return True

    def add(self, ctxt: Any, n: int) -> int:
        self.total += n
        return self.total



@pytest.mark.parametrize("policy", ["reject", "local"])
def test_unreachable_nonce_store_fails_closed_unless_local(
        rpc_conf: Any, rpc_topic: str, policy: str) -> None:
    rpc_conf.set_override("bus_keys", [KEY], group="rpc")
    # Nothing listens there: every connection is refused at once.
    rpc_conf.set_override("backend_url", "redis://127.0.0.1:1?namespace=nowhere",
                          group="coordination")
    rpc_conf.set_override("bus_nonce_unreachable", policy, group="rpc")
    endpoint = _Counting()
    server = RPCServer(rpc_conf, rpc_topic, f"down-{uuid.uuid4().hex[:6]}", [endpoint])
    server.start()
    caller = OsloCaller(rpc_conf)
    try:
        assert caller.wait_connected(5)
        ctxt = _ctxt()
        if policy == "reject":
            with pytest.raises(errors.ServiceUnavailable) as info:
                asyncio.run(caller.call(ctxt, "add", n=1))
            # The worker's own signed answer, not a forgery being refused.
            assert not isinstance(info.value, bus_auth.UnverifiedReply)
            assert "replay check" in info.value.description
            assert endpoint.total == 0
        else:
            assert asyncio.run(caller.call(ctxt, "add", n=1)) == 1
            assert endpoint.total == 1
    finally:
        caller.stop()
        server.stop()
        for name, group in [("bus_keys", "rpc"), ("backend_url", "coordination"),
                            ("bus_nonce_unreachable", "rpc")]:
            rpc_conf.clear_override(name, group=group)
