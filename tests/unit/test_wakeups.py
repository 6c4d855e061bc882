"""The long-poll loop and the waiter hub (``herald.common.rpc.wakeups``), no services."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from herald.common.errors import BadRequest
from herald.common.rpc import wakeups


def test_validate_wait() -> None:
    assert wakeups.validate_wait(0) == 0 and wakeups.validate_wait(20) == 20
    for bad in (-1, 21, True, 1.5, "3", None):
        with pytest.raises(BadRequest):
            wakeups.validate_wait(bad)


def test_a_wakeup_during_an_attempt_is_not_lost() -> None:
    """The post commits while the first attempt runs: the poll must retry at
    once, not sleep until the deadline."""
    hub = wakeups.WaiterHub()
    attempts: list[float] = []

    async def scenario() -> tuple[str | None, float]:
        started = time.monotonic()

        async def attempt() -> str | None:
            attempts.append(time.monotonic() - started)
            if len(attempts) == 1:
                # Another thread announces a message while we are "in storage".
                thread = threading.Thread(target=hub.notify, args=("p", "q"))
                thread.start()
                thread.join()
                await asyncio.sleep(0.05)
                return None
            return "message"

        result = await wakeups.long_poll("p", "q", 5, attempt, lambda r: r is not None,
                                         hub=hub)
        return result, time.monotonic() - started

    result, elapsed = asyncio.run(scenario())
    assert result == "message"
    assert elapsed < 1.0 and len(attempts) == 2
    assert hub.waiting() == 0


def test_deadline_gives_one_last_attempt_and_other_queues_do_not_wake() -> None:
    hub = wakeups.WaiterHub()
    attempts: list[float] = []

    async def scenario() -> None:
        async def attempt() -> None:
            attempts.append(time.monotonic())
            hub.notify("p", "other-queue")

        await wakeups.long_poll("p", "q", 0.3, attempt, lambda r: r is not None, hub=hub)

    started = time.monotonic()
    asyncio.run(scenario())
    assert len(attempts) == 2  # the first, and the last one at the deadline
    assert attempts[1] - started >= 0.29


def test_gone_and_release_end_the_wait() -> None:
    hub = wakeups.WaiterHub()
    owner = object()

    async def scenario() -> tuple[float, float]:
        async def attempt() -> None:
            return None

        gone = asyncio.Event()
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.1, gone.set)
        await wakeups.long_poll("p", "q", 5, attempt, lambda r: False, gone=gone, hub=hub)
        left = time.monotonic() - started
        started = time.monotonic()
        asyncio.get_running_loop().call_later(0.1, hub.release, owner)
        await wakeups.long_poll("p", "q", 5, attempt, lambda r: False, owner=owner, hub=hub)
        return left, time.monotonic() - started

    left, released = asyncio.run(scenario())
    assert left < 0.5 and released < 0.5
    assert hub.waiting() == 0


def test_endpoint_wakes_the_hub() -> None:
    hub = wakeups.WaiterHub()
    hits: list[tuple[str, str]] = []
    hub.notify = lambda project, queue: hits.append((project, queue)) or 1  # type: ignore
    wakeups.WakeupEndpoint(hub).messages_available({}, [["p", "a"], ["p", "b"]])
    assert hits == [("p", "a"), ("p", "b")]


def test_a_parked_poll_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """What tests wait for instead of sleeping: ``waiting()`` and the
    ``long poll parked`` event, once the first attempt found nothing."""
    hub = wakeups.WaiterHub()
    seen: list[int] = []

    async def scenario() -> str | None:
        async def attempt() -> str | None:
            return "message" if seen else None

        async def post_once_parked() -> None:
            while not any(r.getMessage().startswith("long poll parked") for r in caplog.records):
                await asyncio.sleep(0.005)
            seen.append(hub.waiting("p", "q"))
            hub.notify("p", "q")

        poster = asyncio.ensure_future(post_once_parked())
        result = await wakeups.long_poll("p", "q", 5, attempt, lambda r: r is not None,
                                         hub=hub)
        await poster
        return result

    with caplog.at_level("DEBUG", logger=wakeups.__name__):
        assert asyncio.run(scenario()) == "message"
    parked = [r for r in caplog.records if r.getMessage().startswith("long poll parked")]
    assert parked and (parked[0].project, parked[0].queue) == ("p", "q")  # type: ignore[attr-defined]
    assert seen == [1] and hub.waiting("p", "q") == 0


def test_sender_wakes_its_hub_and_queues_on_its_publisher() -> None:
    hub = wakeups.WaiterHub()
    woken: list[tuple[str, str]] = []
    hub.notify = lambda project, queue: woken.append((project, queue)) or 1  # type: ignore
    sender = wakeups.WakeupSender(hub)
    sender.messages_available("p", "q")
    queued: list[tuple[str, str]] = []

    class Publisher:
        def add(self, project: str, queue: str) -> None:
            queued.append((project, queue))

    sender.publisher = Publisher()  # type: ignore[assignment]
    sender.messages_available("p", "r")
    assert woken == [("p", "q"), ("p", "r")] and queued == [("p", "r")]
