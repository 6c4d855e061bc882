"""``FaultyCaller``: a storage caller that fails or delays calls by queue name.

Tests choose a failure by naming the queue, so no test has to patch the
caller or the services:

- ``down-*``: 503, as an unreachable storage (``errors.ServiceUnavailable``);
- ``bug-*``: 500, as a storage bug (``errors.InternalError``);
- ``crash-*``: an untyped exception (``RuntimeError``), as a bug in the caller;
- ``slow-*``: the call takes ``slow_seconds`` longer, then succeeds.

``all_down`` makes every call fail as ``down-*`` does, and ``calls`` records
every call (context, method, arguments), so a test can check what the edge
sent. Anything else passes through to the wrapped caller unchanged.

Thread-safety: ``call`` runs on one event loop (the stack's); ``calls`` is
appended there and read by tests after their request completed. This
module must not know about the services: it wraps any caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc.caller import Caller

# The sentence an unreachable storage gives the edge (the real callers' wording).
UNAVAILABLE = "The storage service did not answer in time. Please try again in a few seconds."


class FaultyCaller:
    """Fails or delays calls about ``down-*``, ``bug-*``, ``crash-*`` and
    ``slow-*`` queues; records every call."""

    def __init__(self, inner: Caller, slow_seconds: float = 0.5) -> None:
        self._inner = inner
        self.slow_seconds = slow_seconds
        self.calls: list[tuple[RequestContext, str, dict[str, Any]]] = []
        #: When set, every call fails as an unreachable storage would.
        self.all_down = False

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        self.calls.append((ctxt, method, kwargs))
        queue = str(kwargs.get("queue", ""))
        if queue.startswith("down-") or self.all_down:
            raise errors.ServiceUnavailable(UNAVAILABLE)
        if queue.startswith("bug-"):
            raise errors.InternalError("KeyError: 'oops'")
        if queue.startswith("crash-"):
            raise RuntimeError("boom")
        if queue.startswith("slow-"):
            await asyncio.sleep(self.slow_seconds)
        return await self._inner.call(ctxt, method, **kwargs)

    def stop(self) -> None:
        self._inner.stop()
