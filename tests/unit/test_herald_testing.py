"""herald.testing's small helpers keep their contracts: wait_until, FakeClock,
FaultyCaller, LogEvents (the stack and the topology are exercised by every
suite that uses them)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.testing import clock as fake_clock
from herald.testing.faults import FaultyCaller
from herald.testing.log_events import LogEvents
from herald.testing.polling import WaitTimeout, wait_until, wait_until_async


def test_wait_until_returns_the_first_truthy_value() -> None:
    values = iter([0, None, [], "ready"])
    assert wait_until(lambda: next(values), timeout=5, interval=0.001) == "ready"


def test_wait_until_fails_as_an_assertion_naming_what_and_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"the thing: not true within 0.05 s \(last value: 0\)"):
        wait_until(lambda: 0, timeout=0.05, interval=0.01, what="the thing")
    assert issubclass(WaitTimeout, AssertionError)


def test_wait_until_lets_the_predicates_exception_through_at_once() -> None:
    def broken() -> bool:
        raise ValueError("dead")

    with pytest.raises(ValueError, match="dead"):
        wait_until(broken, timeout=60)


def test_wait_until_async_keeps_the_loop_running() -> None:
    async def scenario() -> Any:
        done: list[int] = []
        asyncio.get_running_loop().call_later(0.02, done.append, 1)
        return await wait_until_async(lambda: done, timeout=5, interval=0.005)

    assert asyncio.run(scenario()) == [1]


def test_fake_clock_replaces_the_storage_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from herald.storage import clock as storage_clock

    fake = fake_clock.install(monkeypatch)
    start = storage_clock.now()
    fake.advance(3600)
    assert storage_clock.now() == start + 3600


class _Inner:
    def __init__(self) -> None:
        self.stopped = False

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        return (method, kwargs)

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("queue, error", [("down-q", errors.ServiceUnavailable),
                                          ("bug-q", errors.InternalError),
                                          ("crash-q", RuntimeError)])
def test_faulty_caller_fails_by_queue_name(queue: str, error: type[Exception]) -> None:
    caller = FaultyCaller(_Inner())
    ctxt = RequestContext(project_id="p")
    with pytest.raises(error):
        asyncio.run(caller.call(ctxt, "message_list", queue=queue))
    assert [(method, kwargs) for _, method, kwargs in caller.calls] == [
        ("message_list", {"queue": queue})]


def test_faulty_caller_delays_slow_queues_and_passes_the_rest() -> None:
    inner = _Inner()
    caller = FaultyCaller(inner, slow_seconds=0.01)
    ctxt = RequestContext(project_id="p")
    assert asyncio.run(caller.call(ctxt, "op", queue="slow-q")) == ("op", {"queue": "slow-q"})
    caller.all_down = True
    with pytest.raises(errors.ServiceUnavailable):
        asyncio.run(caller.call(ctxt, "op", queue="q"))
    caller.stop()
    assert inner.stopped


def test_log_events_count_by_message_and_extras() -> None:
    log = logging.getLogger("herald.testing.example")
    with LogEvents() as events:
        log.debug("long poll parked: x", extra={"project": "p", "queue": "q"})
        log.debug("long poll parked: y", extra={"project": "p", "queue": "other"})
        assert events.count("long poll parked", project="p", queue="q") == 1
        assert events.count("long poll parked", project="p") == 2
    log.debug("long poll parked: z", extra={"project": "p", "queue": "q"})
    assert events.count("long poll parked", queue="q") == 1  # not recorded after the block
