"""Tornado without waste (issue 5, item 4): C speedups, no blocking call on the loop.

The stack's event loop runs in asyncio debug mode with a low
``slow_callback_duration`` while a small mixed load (posts of 1 and 10
messages, lists, claims, deletes, from concurrent clients) crosses it;
asyncio then logs every callback that held the loop too long ("Executing
<Handle ...> took 0.123 seconds"). None may appear: every storage call
runs on the RPC caller's threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

import pytest

from tests.api.conftest import Client

# Generous for a shared 2-core CI machine, far below any blocking RPC call
# or database transaction (a blocked loop shows up as 10+ ms per request).
SLOW_CALLBACK_SECONDS = 0.1


def test_tornado_uses_its_c_speedups() -> None:
    """Tornado's websocket masking and its fallbacks come from a C extension."""
    from tornado import speedups  # noqa: F401  (ImportError: pure-Python fallback)


class _SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Executing" in message and "took" in message:
            self.records.append(message)


def _load(client: Client, queue: str, rounds: int) -> int:
    done = 0
    for _ in range(rounds):
        assert client.post_messages(queue, count=1)
        assert client.post_messages(queue, count=10)
        assert client.get(f"/v2/queues/{queue}/messages?echo=true").status_code == 200
        claim = client.post(f"/v2/queues/{queue}/claims?limit=5",
                            json_body={"ttl": 60, "grace": 60})
        assert claim.status_code in (201, 204)
        if claim.status_code == 201:
            for message in claim.json()["messages"]:
                href = message["href"]
                assert client.delete(href).status_code == 204
        done += 1
    return done


def test_no_slow_callbacks_on_the_event_loop_under_load(stack: Any) -> None:
    handler = _SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    previous = (stack.loop.get_debug(), stack.loop.slow_callback_duration)

    def debug_on() -> None:
        stack.loop.set_debug(True)
        stack.loop.slow_callback_duration = SLOW_CALLBACK_SECONDS

    stack.loop.call_soon_threadsafe(debug_on)
    try:
        clients = [Client(stack.base_url) for _ in range(8)]
        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            rounds = list(pool.map(lambda c: _load(c, "loop-check", 5), clients))
        assert rounds == [5] * len(clients)
        found = list(handler.records)
        # The detector itself works: a callback that sleeps is reported.
        stack.loop.call_soon_threadsafe(time.sleep, 2 * SLOW_CALLBACK_SECONDS)
        stack.run(asyncio.sleep(0))
        assert len(handler.records) == len(found) + 1, handler.records
    finally:
        def debug_off() -> None:
            stack.loop.set_debug(previous[0])
            stack.loop.slow_callback_duration = previous[1]

        stack.loop.call_soon_threadsafe(debug_off)
        asyncio_log.removeHandler(handler)
    if found:
        pytest.fail("callbacks blocked the event loop:\n" + "\n".join(found[:10]))
