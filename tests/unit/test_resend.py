"""``herald.common.rpc.resend``: when an edge sends a storage call again (issue 26).

Sends are fake futures the test settles, so each rule is seen alone: the
timer, the broker's word that a worker went away, the first answer winning,
an error while another send is out, the bound on sends, the deadline and a
stopping service's abandon. The processes themselves are driven in
tests/faults/test_invisible_faults.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from herald.common import errors
from herald.common.rpc import operations
from herald.common.rpc.resend import MAX_SENDS, Resender


def resender(resend_after: float = 0.05, timeout: float = 2.0) -> Resender:
    conf = SimpleNamespace(rpc=SimpleNamespace(resend_after=resend_after,
                                               worker_check_interval=0.0))
    return Resender(conf, timeout, watch=False)  # type: ignore[arg-type]


class Sends:
    """Every send made, as a future the test settles."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    def __call__(self, attempt: int) -> asyncio.Future[Any]:
        assert attempt == len(self.futures) + 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


async def _until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never happened")


def test_an_unanswered_call_is_sent_again_and_the_first_answer_wins() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender()
        call = asyncio.ensure_future(r.send(sends, True, "message_post"))
        await _until(lambda: len(sends.futures) == 2)  # after resend_after
        sends.futures[1].set_result("second")
        assert await call == "second"
        sends.futures[0].set_result("late")  # dropped
        assert r.resent == 1

    asyncio.run(scenario())


def test_a_call_not_safe_twice_is_sent_once() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender()
        call = asyncio.ensure_future(r.send(sends, False, "message_pop"))
        await asyncio.sleep(0.2)
        assert len(sends.futures) == 1
        sends.futures[0].set_result("only")
        assert await call == "only"

    asyncio.run(scenario())


def test_a_worker_gone_from_the_broker_resends_at_once() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender(resend_after=60.0)
        call = asyncio.ensure_future(r.send(sends, True, "batch"))
        await _until(lambda: len(sends.futures) == 1)
        r._lost_threadsafe()  # what WorkerWatch calls when the count drops
        await _until(lambda: len(sends.futures) == 2)
        sends.futures[1].set_result([{"result": 1}])
        assert await call == [{"result": 1}]

    asyncio.run(scenario())


def test_an_error_waits_for_the_other_send_and_an_answer_ends_the_call() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender()
        call = asyncio.ensure_future(r.send(sends, True, "message_get"))
        await _until(lambda: len(sends.futures) == 2)
        sends.futures[0].set_exception(errors.ServiceUnavailable("broker"))
        await asyncio.sleep(0.01)
        assert not call.done()
        sends.futures[1].set_exception(errors.MessageDoesNotExist("gone"))
        with pytest.raises(errors.MessageDoesNotExist):
            await call  # a typed answer is an answer: not sent again
        assert len(sends.futures) == 2

    asyncio.run(scenario())


def test_sends_are_bounded_and_the_deadline_answers_503() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender(resend_after=0.02, timeout=0.3)
        with pytest.raises(errors.ServiceUnavailable, match="did not answer in time"):
            await r.send(sends, True, "message_list")
        assert len(sends.futures) == MAX_SENDS

    asyncio.run(scenario())


def test_abandon_answers_every_call_503_now_and_later() -> None:
    async def scenario() -> None:
        sends, r = Sends(), resender(resend_after=60.0)
        call = asyncio.ensure_future(r.send(sends, False, "claim_delete"))
        await _until(lambda: len(sends.futures) == 1)
        r.abandon()
        with pytest.raises(errors.ServiceUnavailable, match="stopping"):
            await call
        with pytest.raises(errors.ServiceUnavailable, match="stopping"):
            await r.send(sends, True, "message_get")

    asyncio.run(scenario())


def test_which_operations_may_be_sent_twice() -> None:
    reads = {op.name for op in operations.OPERATIONS if not op.writes}
    assert reads <= operations.RESENDABLE
    assert {"message_post", "claim_create", "message_delete", "claim_delete"} \
        <= operations.RESENDABLE
    # Their reply is recorded under the operation id (tests/contract/test_resends.py).
    assert operations.REPLAYED == {"subscription_test", "message_pop", "queue_create",
                                   "subscription_create", "queue_redrive", "message_release"}
    assert operations.REPLAYED <= operations.RESENDABLE


class AnsweringSends(Sends):
    """Sends answered ``delay`` seconds after they are made (None: never)."""

    def __init__(self, delay: float | None) -> None:
        super().__init__()
        self.delay = delay

    def __call__(self, attempt: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        if self.delay is not None:
            asyncio.get_running_loop().call_later(self.delay, future.set_result, attempt)
        return future


def test_workers_that_answer_slowly_are_not_sent_their_calls_again() -> None:
    """Calls answered in 0.12 s with a 0.05 s resend_after: a fixed timer
    would send every one of them twice; the estimator learns the answer
    time from the first call answered on its only send, and sends no more."""

    async def scenario() -> list[int]:
        r = resender(resend_after=0.05)
        sends_per_call = []
        for _ in range(10):
            sends = AnsweringSends(0.12)
            assert await r.send(sends, True, "batch") == 1  # the first send's answer
            sends_per_call.append(len(sends.futures))
        return sends_per_call

    sends_per_call = asyncio.run(scenario())
    assert sum(sends_per_call[:3]) > 3  # learning: early calls were sent again
    assert sends_per_call[3:] == [1] * 7


def test_a_stopped_worker_is_found_as_fast_as_before_after_quick_answers() -> None:
    """After quick answers the wait is resend_after again: a call its worker
    holds without answering is sent again after it, and the re-send answers."""

    async def scenario() -> tuple[float, int]:
        r = resender(resend_after=0.1)
        for _ in range(5):
            await r.send(AnsweringSends(0.005), True, "message_get")
        assert r.answer_times.resend_after() == pytest.approx(0.1)
        stuck = AnsweringSends(None)
        started = asyncio.get_running_loop().time()
        call = asyncio.ensure_future(r.send(stuck, True, "message_get"))
        await _until(lambda: len(stuck.futures) == 2)
        waited = asyncio.get_running_loop().time() - started
        stuck.futures[1].set_result("from another worker")
        assert await call == "from another worker"
        return waited, r.resent

    waited, resent = asyncio.run(scenario())
    assert 0.09 <= waited < 0.5 and resent == 1
