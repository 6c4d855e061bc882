"""An edge service's way to the storage workers, and who owns it.

The REST api and the websocket gateway need the same three things: a
``StorageAPI`` to call, and, when they talk to the workers over the bus
themselves, the ``OsloCaller`` under it and the ``WakeupListener`` that wakes
their long polls when a worker casts a wake-up. ``StorageLink`` builds and
owns those two, so each edge service starts and stops them the same way.

Given a ``StorageAPI`` (embedded mode, where ``herald run`` shares one worker
in process; test harnesses), the link owns nothing: whoever made that
storage stops it. A stopping edge asks the link how long to drain
(``drain_seconds``) and, at the deadline, to answer every storage call still
waiting with a 503 (``abandon``). This module must not know HTTP, websockets or routes.
Not thread-safe: its owning service calls ``start`` and ``stop`` from its
event loop.
"""

from __future__ import annotations

from oslo_config import cfg

from herald.common import lifecycle
from herald.common.rpc import wakeups
from herald.common.rpc.caller import PUBLISH_GRACE, OsloCaller
from herald.common.rpc.storage_api import StorageAPI


class StorageLink:
    """The storage an edge calls, with the caller and listener it owns, if any."""

    def __init__(self, conf: cfg.ConfigOpts, member_id: str, waiters: wakeups.WaiterHub,
                 storage: StorageAPI | None = None) -> None:
        self._conf = conf
        self.caller: OsloCaller | None = None
        self._listener: wakeups.WakeupListener | None = None
        if storage is None:
            self.caller = OsloCaller(conf)
            storage = StorageAPI(self.caller)
            # Long polls waiting here are woken by fanout casts from any worker.
            self._listener = wakeups.WakeupListener(conf, member_id, waiters)
        self.storage = storage

    def start(self) -> None:
        """Connect the owned caller and listener (both connect in the background)."""
        if self.caller is not None:
            self.caller.start()
        if self._listener is not None:
            self._listener.start()

    def drain_seconds(self, configured: float | None) -> float:
        """How long a stopping edge lets its requests finish: ``configured``,
        else long enough for any storage call to be answered or given up on
        (``call_timeout`` and the publish grace), plus a second to write the
        answer."""
        if configured is not None:
            return configured
        return self._conf.rpc.call_timeout + PUBLISH_GRACE + 1.0

    def abandon(self) -> None:
        """Answer every storage call still waiting, and any sent from now on,
        with a 503: a stopping edge's deadline has come."""
        if self.caller is not None:
            self.caller.abandon()

    async def stop(self) -> None:
        """Stop what this link owns: wake-ups first, then the caller."""
        listener, self._listener = self._listener, None
        caller, self.caller = self.caller, None
        if listener is not None:
            await lifecycle.on_thread(listener.stop, "wakeup-listener-stop")
        if caller is not None:
            await lifecycle.on_thread(caller.stop, "rpc-caller-stop")
