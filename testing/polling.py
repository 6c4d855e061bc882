"""``wait_until``: poll a condition until it holds, instead of sleeping and hoping.

A test that must see something happen polls for it with a deadline; a test
that must see something *not* happen checks a state that proves it (a
parked waiter, an outbox row, a counter) rather than sleeping and asserting
nothing changed. This module must not know about Herald: it polls any
callable.

Thread-safety: ``wait_until`` only calls ``predicate`` from the calling
thread; ``wait_until_async`` from the calling event loop. Both are safe to
use from several threads or loops at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.05


class WaitTimeout(AssertionError):
    """The condition did not hold in time (an ``AssertionError``, so pytest
    reports it as a test failure, not an error)."""


def _naps(predicate: Callable[[], T], timeout: float, interval: float,
          what: str | None) -> Generator[float, None, T]:
    """The polling schedule both waits share: yields how long to sleep before
    the next try, returns the predicate's truthy value (as ``StopIteration``'s),
    raises ``WaitTimeout`` past the deadline. Sleeping is the caller's: a
    thread sleeps, a coroutine awaits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            subject = what or "condition"
            raise WaitTimeout(f"{subject}: not true within {timeout:g} s "
                              f"(last value: {value!r})")
        yield min(interval, remaining)


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT,
               interval: float = DEFAULT_INTERVAL, what: str | None = None) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy
    value, and return that value; raise ``WaitTimeout`` after ``timeout``.

    The predicate is always called at least once, and once more at the
    deadline, so a condition that became true during the last sleep counts.
    Exceptions of the predicate propagate at once (a dead process should
    fail the wait early, not at the deadline).
    """
    naps = _naps(predicate, timeout, interval, what)
    try:
        while True:
            time.sleep(next(naps))
    except StopIteration as done:
        return done.value


async def wait_until_async(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT,
                           interval: float = DEFAULT_INTERVAL, what: str | None = None) -> T:
    """``wait_until`` for a coroutine: sleeps with ``asyncio.sleep`` so the
    loop keeps running the code that will make ``predicate`` true."""
    naps = _naps(predicate, timeout, interval, what)
    try:
        while True:
            await asyncio.sleep(next(naps))
    except StopIteration as done:
        return done.value
