"""Integration: AMQP consumers sleep between messages (``compat.amqp_first_wait``).

An oslo.messaging RPC server and an ``OsloCaller`` on the machine's RabbitMQ,
in this process, with ``compat.amqp_first_wait()`` as every Herald service runs
it at start. After one call both consumer threads (the server's listener
and the caller's reply waiter) must wait for their next message instead of
waking up over and over: oslo.messaging's own schedule restarts at 1 ms
after every message and doubles, nine wake-ups each in the half second
watched here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from oslo_messaging._drivers import amqpdriver, impl_rabbit

from herald.common.context import RequestContext
from herald.common.rpc import compat
from herald.common.rpc.caller import OsloCaller

pytestmark = [pytest.mark.rabbit]

WATCHED_SECONDS = 0.5


@pytest.fixture
def consume_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """(time, thread name) of every wait for a message on an AMQP connection."""
    calls: list[tuple[float, str]] = []
    original = impl_rabbit.Connection.consume

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((time.monotonic(), threading.current_thread().name))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(impl_rabbit.Connection, "consume", counted)
    return calls


def test_consumers_wait_for_the_next_message_instead_of_polling(
        pinged_caller: Callable[[], OsloCaller], consume_calls: list[tuple[float, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Restore the driver's own schedule for the rest of the test session.
    monkeypatch.setattr(amqpdriver, "ACK_REQUEUE_EVERY_SECONDS_MIN",
                        amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN)
    compat.amqp_first_wait()
    caller = pinged_caller()
    answered = time.monotonic()
    time.sleep(WATCHED_SECONDS)
    waits = [name for at, name in consume_calls if answered < at < answered + WATCHED_SECONDS]
    # Each consumer starts one wait after the last message, and it lasts
    # the whole window. oslo.messaging's own schedule: 1, 2, 4 ... 256 ms,
    # nine waits per consumer.
    assert len(waits) <= 2, waits
    # ...and they still answer at once when a message comes.
    started = time.monotonic()
    ctxt = RequestContext(project_id="p", request_id="req-polling")
    assert asyncio.run(caller.call(ctxt, "ping")) is True
    assert time.monotonic() - started < 0.5
