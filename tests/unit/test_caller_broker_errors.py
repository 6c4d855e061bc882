"""A broker connection that fails under oslo.messaging's send is a 503, not a 500,
and a call stuck in oslo.messaging still answers 503 in bounded time.

Found by the broker fault scenario (tests/faults/test_broker.py): with the
RabbitMQ link cut, some calls failed with kombu's OperationalError
("[Errno 111] Connection refused"), which oslo.messaging does not wrap in a
MessagingException on every path, and the REST API answered 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from types import SimpleNamespace
from typing import Any

import amqp.exceptions
import kombu.exceptions
import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc import caller as caller_module
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.resend import Resender


class _FailingClient:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def call(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


def _caller(exc: BaseException) -> OsloCaller:
    caller = OsloCaller.__new__(OsloCaller)  # no transport: only _call_blocking is used
    caller._conf = SimpleNamespace(rpc=SimpleNamespace(call_timeout=1.0, resend_after=0.0,
                                                        worker_check_interval=0.0))
    caller._stopping = threading.Event()
    caller._reply_queue_ready = threading.Event()
    caller._reply_queue_ready.set()
    caller._client = _FailingClient(exc)
    return caller


@pytest.mark.parametrize("exc", [
    kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
    amqp.exceptions.ConnectionForced("broker forced connection closure"),
    ConnectionResetError(104, "Connection reset by peer"),
])
def test_broker_connection_errors_are_503(exc: BaseException) -> None:
    with pytest.raises(errors.ServiceUnavailable, match="message broker is unreachable"):
        _caller(exc)._call_blocking(RequestContext(project_id="p"), "ping", {})


def test_other_failures_stay_500() -> None:
    with pytest.raises(errors.InternalError, match="KeyError"):
        _caller(KeyError("x"))._call_blocking(RequestContext(project_id="p"), "ping", {})


class _StuckClient:
    def call(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(3.0)  # a publish blocked behind a reconnecting connection


def test_a_call_stuck_in_the_publish_answers_503_in_bounded_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the silent broker outage (tests/faults/test_broker.py): calls
    # took call_timeout + 5 s because the publish blocked before oslo's
    # timeout even started.
    monkeypatch.setattr(caller_module, "PUBLISH_GRACE", 0.3)
    caller = _caller(KeyError("unused"))
    caller._client = _StuckClient()
    caller._conf.rpc.call_timeout = 0.2
    caller._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    caller._resender = Resender(caller._conf, 0.2 + 0.3, watch=False)
    started = time.monotonic()
    try:
        with pytest.raises(errors.ServiceUnavailable, match="did not answer in time"):
            asyncio.run(caller._send_one(RequestContext(project_id="p"), "ping", {}))
        assert time.monotonic() - started < 1.5
    finally:
        caller._pool.shutdown(wait=False)
