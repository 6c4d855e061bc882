"""The RPC coalescer (herald.common.rpc.coalescer): flushing, outcomes, order.

A fake transport records what would go over RabbitMQ; the worker side is a
small function answering each operation, so every test stays in-process and
takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc.coalescer import Coalescer, error_from_wire, error_to_wire


class FakeTransport:
    """Records single calls and batches; answers like a worker would."""

    def __init__(self, fail_batch: BaseException | None = None) -> None:
        self.singles: list[tuple[str, dict[str, Any]]] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_batch = fail_batch

    @staticmethod
    def answer(method: str, args: dict[str, Any]) -> Any:
        if method == "fail_typed":
            raise errors.QueueDoesNotExist("Queue q does not exist.")
        if method == "fail_untyped":
            raise KeyError("boom")
        return {"method": method, **args}

    async def send_one(self, ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> Any:
        self.singles.append((method, kwargs))
        await asyncio.sleep(0)
        return self.answer(method, kwargs)

    def held_until(self, release: asyncio.Event) -> Any:
        """A ``send_one`` whose calls stay unanswered until ``release`` is set."""
        async def send_one(ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> Any:
            await release.wait()
            return await self.send_one(ctxt, method, kwargs)
        return send_one

    async def send_batch(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(ops)
        await asyncio.sleep(0)
        if self.fail_batch is not None:
            raise self.fail_batch
        replies = []
        for op in ops:
            try:
                replies.append({"result": self.answer(op["method"], op["args"])})
            except Exception as exc:
                replies.append({"error": error_to_wire(exc)})
        return replies


def ctxt(n: int = 0) -> RequestContext:
    return RequestContext(project_id=f"p{n}", client_id=f"client-{n}", request_id=f"req-{n}")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_flushes_on_size_without_waiting_for_the_timer() -> None:
    async def scenario() -> tuple[FakeTransport, list[Any], float]:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_batch=4,
                              max_delay=30.0)
        started = time.monotonic()
        results = await asyncio.gather(*(coalescer.call(ctxt(i), "op", {"i": i})
                                         for i in range(8)))
        return transport, results, time.monotonic() - started

    transport, results, elapsed = run(scenario())
    assert elapsed < 5  # the 30 s timer never had to fire
    assert [len(batch) for batch in transport.batches] == [4, 4]
    assert results == [{"method": "op", "i": i} for i in range(8)]


def test_flushes_after_the_delay_while_a_batch_is_in_flight() -> None:
    async def scenario() -> tuple[FakeTransport, float]:
        transport = FakeTransport()
        release = asyncio.Event()
        slow_one = transport.held_until(release)

        coalescer = Coalescer(slow_one, transport.send_batch, max_batch=100,
                              max_delay=0.02)
        in_flight = asyncio.ensure_future(coalescer.call(ctxt(9), "first", {}))
        await asyncio.sleep(0.005)  # "first" went out at once and is unanswered
        assert transport.singles == [] and len(coalescer._sending) == 1
        started = time.monotonic()
        await asyncio.gather(*(coalescer.call(ctxt(i), "op", {"i": i}) for i in range(3)))
        elapsed = time.monotonic() - started
        release.set()
        await in_flight
        return transport, elapsed

    transport, elapsed = run(scenario())
    assert [len(batch) for batch in transport.batches] == [3]
    assert 0.015 <= elapsed < 2


def one_slot(transport: FakeTransport, release: asyncio.Event, max_batch: int) -> Coalescer:
    """A coalescer allowed one batch in flight, whose calls wait for ``release``."""
    return Coalescer(transport.held_until(release), transport.send_batch, max_batch=max_batch,
                     max_delay=0.0, max_inflight=1)


def test_at_most_max_inflight_batches_the_rest_go_together_after_a_reply() -> None:
    """Group commit: while max_inflight batches are unanswered, operations of
    later loop turns only queue (however long the delay is past), and all of
    them go in one batch as soon as a reply frees a slot."""
    async def scenario() -> tuple[FakeTransport, list[Any]]:
        transport, release = FakeTransport(), asyncio.Event()
        coalescer = one_slot(transport, release, max_batch=100)
        first = asyncio.ensure_future(coalescer.call(ctxt(9), "first", {}))
        later = []
        for i in range(5):  # five separate loop turns, each past the 0 s delay
            await asyncio.sleep(0.01)
            later.append(asyncio.ensure_future(coalescer.call(ctxt(i), "op", {"i": i})))
        await asyncio.sleep(0.01)
        assert transport.singles == [] and transport.batches == []  # all queued
        release.set()
        results = await asyncio.gather(first, *later)
        return transport, results

    transport, results = run(scenario())
    assert transport.singles == [("first", {})]
    assert [[op["args"]["i"] for op in batch] for batch in transport.batches] == [[0, 1, 2, 3, 4]]
    assert results[1:] == [{"method": "op", "i": i} for i in range(5)]


def test_a_full_queue_is_sent_even_with_every_slot_in_flight() -> None:
    async def scenario() -> FakeTransport:
        transport, release = FakeTransport(), asyncio.Event()
        coalescer = one_slot(transport, release, max_batch=3)
        first = asyncio.ensure_future(coalescer.call(ctxt(9), "first", {}))
        await asyncio.sleep(0.01)
        full = [asyncio.ensure_future(coalescer.call(ctxt(i), "op", {"i": i}))
                for i in range(3)]
        await asyncio.gather(*full)  # answered while "first" still waits
        release.set()
        await first
        return transport

    transport = run(scenario())
    assert [len(batch) for batch in transport.batches] == [3]


def test_an_operation_queued_behind_a_hung_batch_fails_within_the_deadline() -> None:
    """A broker gone silent: the batch in flight hangs until its own timeout.
    An operation queued behind it is answered 503 within the deadline from
    its arrival -- not after the hung batch and then its own call -- and,
    never sent, it never runs."""
    async def scenario() -> tuple[FakeTransport, float, asyncio.Task[Any]]:
        transport, release = FakeTransport(), asyncio.Event()
        coalescer = Coalescer(transport.held_until(release), transport.send_batch,
                              max_batch=100, max_delay=0.0, max_inflight=1, deadline=0.2)
        hung = asyncio.ensure_future(coalescer.call(ctxt(9), "first", {}))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailable):
            await coalescer.call(ctxt(1), "queued", {})
        elapsed = time.monotonic() - started
        release.set()  # the hung call is answered at last, after its deadline
        await asyncio.sleep(0.05)
        return transport, elapsed, hung

    transport, elapsed, hung = run(scenario())
    assert elapsed < 0.5
    assert isinstance(hung.exception(), errors.ServiceUnavailable)
    assert transport.singles == [("first", {})] and transport.batches == []


def test_an_idle_coalescer_does_not_wait_for_the_delay() -> None:
    """Nothing in flight: operations of one loop turn go out at the next."""
    async def scenario() -> tuple[FakeTransport, float]:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_batch=100,
                              max_delay=5.0)
        started = time.monotonic()
        await coalescer.call(ctxt(0), "alone", {})
        await asyncio.gather(*(coalescer.call(ctxt(i), "op", {"i": i}) for i in range(3)))
        return transport, time.monotonic() - started

    transport, elapsed = run(scenario())
    assert elapsed < 1  # the 5 s timer was never armed
    assert transport.singles == [("alone", {})]
    assert [len(batch) for batch in transport.batches] == [3]


def test_a_lone_operation_is_sent_as_a_plain_call() -> None:
    async def scenario() -> tuple[FakeTransport, Any]:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_delay=0.001)
        return transport, await coalescer.call(ctxt(), "op", {"x": 1})

    transport, result = run(scenario())
    assert result == {"method": "op", "x": 1}
    assert transport.singles == [("op", {"x": 1})] and transport.batches == []


def test_health_calls_and_a_batch_size_of_one_are_never_coalesced() -> None:
    async def scenario() -> FakeTransport:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch)
        await asyncio.gather(*(coalescer.call(ctxt(), "ping", {}) for _ in range(3)))
        disabled = Coalescer(transport.send_one, transport.send_batch, max_batch=1)
        await asyncio.gather(*(disabled.call(ctxt(), "op", {}) for _ in range(3)))
        return transport

    transport = run(scenario())
    assert transport.batches == [] and len(transport.singles) == 6


def test_each_operation_keeps_its_outcome_and_typed_errors_cross() -> None:
    async def scenario() -> list[Any]:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_batch=3)
        return await asyncio.gather(
            coalescer.call(ctxt(1), "op", {"i": 1}),
            coalescer.call(ctxt(2), "fail_typed", {}),
            coalescer.call(ctxt(3), "fail_untyped", {}),
            return_exceptions=True)

    ok, typed, untyped = run(scenario())
    assert ok == {"method": "op", "i": 1}
    assert type(typed) is errors.QueueDoesNotExist
    assert typed.args == ("Queue q does not exist.",)
    assert type(untyped) is errors.InternalError and "KeyError" in str(untyped)


def test_a_failed_batch_fails_each_of_its_operations_and_only_them() -> None:
    async def scenario() -> tuple[list[Any], Any]:
        transport = FakeTransport(fail_batch=errors.ServiceUnavailable("broker down"))
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_batch=2)
        failed = await asyncio.gather(*(coalescer.call(ctxt(i), "op", {}) for i in range(2)),
                                      return_exceptions=True)
        transport.fail_batch = None
        later = await asyncio.gather(*(coalescer.call(ctxt(i), "op", {"i": i})
                                       for i in range(2)))
        return failed, later

    failed, later = run(scenario())
    assert all(isinstance(exc, errors.ServiceUnavailable) for exc in failed)
    assert later == [{"method": "op", "i": 0}, {"method": "op", "i": 1}]


def test_operations_keep_submission_order_and_their_own_context() -> None:
    async def scenario() -> FakeTransport:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_batch=64,
                              max_delay=0.005)
        await asyncio.gather(*(coalescer.call(ctxt(i), f"op{i}", {"i": i}) for i in range(10)))
        return transport

    transport = run(scenario())
    (batch,) = transport.batches
    assert [op["method"] for op in batch] == [f"op{i}" for i in range(10)]
    assert [op["context"]["request_id"] for op in batch] == [f"req-{i}" for i in range(10)]
    assert [op["context"]["project_id"] for op in batch] == [f"p{i}" for i in range(10)]


def test_a_cancelled_caller_does_not_disturb_its_neighbours() -> None:
    async def scenario() -> Any:
        transport = FakeTransport()
        coalescer = Coalescer(transport.send_one, transport.send_batch, max_delay=0.01)
        gone = asyncio.ensure_future(coalescer.call(ctxt(1), "op", {"i": 1}))
        kept = asyncio.ensure_future(coalescer.call(ctxt(2), "op", {"i": 2}))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert run(scenario()) == {"method": "op", "i": 2}


@pytest.mark.parametrize("exc", [errors.ClaimMismatch("no"), errors.ServiceUnavailable("x"),
                                 errors.MessageIsClaimed("held")])
def test_error_wire_round_trip(exc: errors.HeraldError) -> None:
    back = error_from_wire(error_to_wire(exc))
    assert type(back) is type(exc) and back.args == exc.args


def test_foreign_exception_types_are_never_imported() -> None:
    back = error_from_wire({"module": "os", "class": "system", "args": ["rm -rf"]})
    assert type(back) is errors.InternalError
