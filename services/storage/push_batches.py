"""Websocket pushes bound for one gateway, sent together.

A dispatcher serves many (subscription, post) tasks at once, and each of
their websocket pushes used to be one oslo.messaging cast: a publish with
confirm on the worker, a consume, decode and thread hop on the gateway --
~3.5 ms of CPU per notification between them, which at 200 posts/s with a
websocket subscriber was most of what the two processes did. ``PushBatches``
queues the pushes of one gateway while a send to it is in flight and sends
them together when it returns (up to ``max_batch``); a push to an idle
gateway leaves at the next loop turn, without a timer (the same rule as the
edges' RPC coalescer). Each push still gets its own result.

Runs on the dispatcher's event loop; the blocking ``send`` runs on the given
threads. Nothing here knows how a batch is sent or what a result means.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

class PushBatches(Generic[Item, Result]):
    """``send(gateway_id, items)`` returns one result per item, in order."""

    def __init__(self, send: Callable[[str, list[Item]], list[Result]],
                 threads: concurrent.futures.Executor, max_batch: int = 64) -> None:
        self._send = send
        self._threads = threads
        self._max_batch = max(1, max_batch)
        self._pending: dict[str, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._draining: set[str] = set()

    async def push(self, gateway_id: str, item: Item) -> Result:
        """Queue ``item`` for ``gateway_id``; its result once its batch was sent
        (or the exception that batch's send raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.setdefault(gateway_id, []).append((item, future))
        if gateway_id not in self._draining:
            self._draining.add(gateway_id)
            # Not at once: pushes queued during this loop turn go along.
            loop.call_soon(lambda: loop.create_task(self._drain(gateway_id)))
        return await future

    async def _drain(self, gateway_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending.get(gateway_id):
                queued = self._pending[gateway_id]
                batch, self._pending[gateway_id] = (queued[:self._max_batch],
                                                    queued[self._max_batch:])
                items = [item for item, _ in batch]
                try:
                    results = await loop.run_in_executor(self._threads, self._send,
                                                         gateway_id, items)
                    if len(results) != len(items):
                        raise RuntimeError(f"{len(results)} results for {len(items)} pushes")
                except Exception as exc:  # the batch's fate is each push's
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining.discard(gateway_id)
            # Empty unless the drain was cancelled (dispatcher stopping).
            for _, future in self._pending.pop(gateway_id, []):
                future.cancel()
