"""Long polling on the REST edge: the ``wait`` query parameter and the
client-disconnect signal (docs/api-extensions.md, "Long polling").

``wait=<seconds>`` (0..20) on ``POST .../claims`` and ``GET .../messages``
makes an empty answer wait until a message becomes available or the time is
up. The waiting happens here, on the API's event loop, between storage
calls (``herald.common.rpc.wakeups.long_poll``): no storage worker thread or
RPC thread is held while nobody posts. ``LongPollMixin`` gives a handler an
``asyncio.Event`` that is set when the client disconnects, so a long poll
stops instead of claiming messages nobody will receive.

Must not decide what a claim or a listing returns (the handlers do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from herald.api.query_string import QueryParams
from herald.common.rpc import wakeups

T = TypeVar("T")


def parse_wait(query: QueryParams) -> int:
    """``wait`` from the query string: 0 when absent; 400 when not an integer
    (Invalid parameter) or out of 0..20 (Invalid API request)."""
    value = query.get_int("wait")
    return 0 if value is None else wakeups.validate_wait(value)


class LongPollMixin:
    """For ``BaseHandler`` subclasses that long-poll: tracks the client leaving."""

    _gone_event: asyncio.Event | None = None

    @property
    def client_gone(self) -> asyncio.Event:
        if self._gone_event is None:
            self._gone_event = asyncio.Event()
        return self._gone_event

    def on_connection_close(self) -> None:
        self.client_gone.set()
        super().on_connection_close()  # type: ignore[misc]

    async def poll(self, project: str, queue: str, wait: int,
                   attempt: Callable[[], Awaitable[T]], found: Callable[[T], bool]) -> T:
        """``attempt()`` once, or long-polled for up to ``wait`` seconds."""
        if wait <= 0:
            return await attempt()
        # The application owns the wait: a stopping APIService releases it.
        return await wakeups.long_poll(project, queue, wait, attempt, found,
                                       gone=self.client_gone,
                                       owner=self.application,  # type: ignore[attr-defined]
                                       hub=self.settings["waiters"])  # type: ignore[attr-defined]


def claimed_something(result: dict[str, Any]) -> bool:
    return bool(result.get("claim_id") and result.get("messages"))


def listed_something(result: dict[str, Any]) -> bool:
    return bool(result.get("messages"))
