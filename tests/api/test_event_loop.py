"""Tornado without waste (issue 5, item 4): C speedups, no blocking call on the loop.

A small mixed load (posts of 1 and 10 messages, lists, claims, deletes, from
concurrent clients) crosses the stack while the calls that block — opening a
database connection, waiting on a future, sleeping — are watched: none may
run on the event loop's thread; every storage call belongs on the RPC
caller's threads. The check is by thread, not by time, so a busy CI machine
cannot make it fail and a fast one cannot hide a blocking call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.engine

from tests.api.conftest import Client


def test_tornado_uses_its_c_speedups() -> None:
    """Tornado's websocket masking and its fallbacks come from a C extension."""
    from tornado import speedups  # noqa: F401  (ImportError: pure-Python fallback)


class _LoopBlockers:
    """Records blocking calls made on the event loop's thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, loop_thread: int) -> None:
        self.found: list[str] = []
        self._loop_thread = loop_thread
        for owner, name in ((sqlalchemy.engine.Engine, "connect"),
                            (concurrent.futures.Future, "result"),
                            (time, "sleep")):
            monkeypatch.setattr(owner, name, self._watch(f"{owner.__name__}.{name}",
                                                         getattr(owner, name)))

    def _watch(self, what: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            # asyncio itself reads the result of a *finished* executor
            # future on the loop; only waiting for an unfinished one blocks.
            finished = (what == "Future.result" and args[0].done())
            if threading.get_ident() == self._loop_thread and not finished:
                self.found.append(what)
            return func(*args, **kwargs)

        return watched


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


def test_no_blocking_call_on_the_event_loop_under_load(stack: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def loop_thread() -> int:
        return threading.get_ident()

    blockers = _LoopBlockers(monkeypatch, stack.run(loop_thread()))
    clients = [Client(stack.base_url) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        rounds = list(pool.map(lambda c: _load(c, "loop-check", 5), clients))
    assert rounds == [5] * len(clients)
    found = list(blockers.found)
    # The detector itself works: a sleep scheduled on the loop is reported.
    stack.loop.call_soon_threadsafe(time.sleep, 0)
    stack.run(asyncio.sleep(0))
    assert blockers.found[len(found):] == ["time.sleep"], blockers.found
    if found:
        pytest.fail(f"blocking calls on the event loop: {sorted(set(found))}")
