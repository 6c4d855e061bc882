"""PushBatches (herald.storage.push_batches): websocket pushes to one gateway
go together while a send to it is in flight, each keeping its own result."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from herald.storage.push_batches import PushBatches


class Gateways:
    """A blocking ``send`` that records its batches; the first send to
    "gw-1" waits until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.release = threading.Event()
        self.fail = False

    def send(self, gateway_id: str, items: list[str]) -> list[str]:
        if gateway_id == "gw-1" and not any(g == "gw-1" for g, _ in self.batches):
            self.release.wait(5)
        self.batches.append((gateway_id, list(items)))
        if self.fail:
            raise ConnectionError("broker gone")
        return [f"{gateway_id}:{item}" for item in items]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def threads() -> Any:
    pool = concurrent.futures.ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=True)


def test_pushes_queued_while_a_send_is_in_flight_go_in_one_batch(threads: Any) -> None:
    gateways = Gateways()
    batches: PushBatches[str, str] = PushBatches(gateways.send, threads, max_batch=3)

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(batches.push("gw-1", "a"))
        await asyncio.sleep(0.05)  # "a" is being sent, and held
        later = [asyncio.ensure_future(batches.push("gw-1", item)) for item in "bcde"]
        # Another gateway does not wait for gw-1's send.
        assert await asyncio.wait_for(batches.push("gw-2", "z"), 2) == "gw-2:z"
        gateways.release.set()
        return await asyncio.gather(first, *later)

    results = run(scenario())
    assert results == ["gw-1:a", "gw-1:b", "gw-1:c", "gw-1:d", "gw-1:e"]
    to_gw1 = [items for gateway, items in gateways.batches if gateway == "gw-1"]
    assert to_gw1 == [["a"], ["b", "c", "d"], ["e"]]  # in order, at most max_batch


def test_pushes_of_one_loop_turn_leave_together(threads: Any) -> None:
    gateways = Gateways()
    gateways.release.set()
    batches: PushBatches[str, str] = PushBatches(gateways.send, threads)

    async def scenario() -> list[str]:
        return await asyncio.gather(*(batches.push("gw", item) for item in "xyz"))

    assert run(scenario()) == ["gw:x", "gw:y", "gw:z"]
    assert gateways.batches == [("gw", ["x", "y", "z"])]


def test_a_failed_send_fails_each_push_of_its_batch_and_no_other(threads: Any) -> None:
    gateways = Gateways()
    gateways.release.set()
    gateways.fail = True
    batches: PushBatches[str, str] = PushBatches(gateways.send, threads)

    async def scenario() -> tuple[list[Any], str]:
        failed = await asyncio.gather(*(batches.push("gw", item) for item in "ab"),
                                      return_exceptions=True)
        gateways.fail = False
        return failed, await batches.push("gw", "c")

    failed, after = run(scenario())
    assert [type(exc) for exc in failed] == [ConnectionError, ConnectionError]
    assert after == "gw:c"
