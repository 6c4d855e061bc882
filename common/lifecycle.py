"""The one lifecycle every Herald service has: ``start()``, ``stop(grace)``, ``kill()``.

``Service`` is the contract the CLI (``herald.cli.main``) and the test
harnesses rely on, whatever the service (REST API, websocket gateway,
storage worker, the embedded ``herald run``):

- ``await start()``: bring everything up, the service's caller and
  listeners included; returns once it serves. Must run on the event loop
  that will serve it.
- ``await stop(grace)``: drain. Take no new work, answer everything in
  flight (waiting at most about ``grace`` seconds where the service can
  bound it; None: the service's configured default), then release every
  resource. Safe to call twice, and after a failed start.
- ``await kill()``: stop now. Take no new work and abandon what is in
  flight (clients see their connection close or their call time out and
  re-send it: every storage operation is idempotent), then release every
  resource without waiting for anyone. Safe after ``stop()`` or instead.

``on_thread`` runs a blocking step of a lifecycle (a storage worker's
database wait, an oslo.messaging server's stop) off the event loop. This
module holds no service logic and must not grow any.

Thread-safety: the lifecycle methods of one service are called from the
event loop that runs it, one at a time (``kill`` may interrupt a ``stop``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Service(Protocol):
    """What the CLI runs and the harnesses start and stop (see the module docstring)."""

    async def start(self) -> None: ...

    async def stop(self, grace: float | None = None) -> None: ...

    async def kill(self) -> None: ...


def on_thread(function: Callable[[], None], name: str) -> Any:
    """Run blocking ``function`` for a lifecycle method; await the result.

    On an event loop: on a daemon thread of its own (not the loop's default
    executor, whose threads the interpreter waits for at exit: a process
    stopped while a worker still waited for its database would hang), and
    the returned future is done when ``function`` returns or raises. With no
    event loop running in this thread (synchronous callers, such as test
    harnesses driving a worker from their own thread): right now, returning
    None (nothing to await).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        function()
        return None
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            function()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop closed meanwhile: nobody awaits
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
