"""Reads a queue's recipients again soon after its subscriptions change, off the posts' path.

A post to a queue whose subscriptions changed since this worker last read
them reads them all again (``herald.storage.recipients``): 70 to 90 ms for
10,000 websocket subscribers on PostgreSQL, inside that post's latency.
The usual life of a broadcast queue is a burst of subscriptions (a page's
thousands of connections arriving) and then posts; so after a change this
worker made (``subscription_versions.bump`` tells it, once committed), this
thread reads the queue's recipients once its subscriptions have been quiet
for ``QUIET_SECONDS`` -- at the latest ``MAX_DELAY_SECONDS`` after the
first change of a burst -- and the next post finds them remembered.

Nothing here decides who is notified. The entry it leaves is the one a post
would have read, and a post uses it only while the queue's version is still
the one it was read with: a refresh that raced with a later change is
simply not used. Only the worker that made a change refreshes; another
worker reads on its next post, as before. Must not write.

Thread-safety: ``changed`` from any thread; one thread of its own refreshes.
Lifecycle: ``start`` / ``stop`` (the storage worker's); before ``start`` and
after ``stop``, ``changed`` does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from herald.storage import clock, recipients

if TYPE_CHECKING:
    from oslo_config import cfg

    from herald.storage.engine import Database

LOG = logging.getLogger(__name__)

#: Seconds without a change before a queue's recipients are read again.
QUIET_SECONDS = 0.1
#: Seconds after the first change of a burst by which they are read anyway.
MAX_DELAY_SECONDS = 1.0

Pending = tuple["Database", str, str]


class RecipientWarmer:
    """Refreshes the recipients of the queues whose subscriptions changed here."""

    def __init__(self) -> None:
        #: (database, project, queue) -> (first change, last change), monotonic.
        self._pending: dict[Pending, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._confirmed_only = False
        #: Queues read again so far (for tests and logs).
        self.refreshed = 0

    def start(self, conf: cfg.ConfigOpts) -> None:
        if self._thread is not None:
            return
        self._confirmed_only = bool(conf.notification.require_confirmation)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="recipient-warmer",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout)
        with self._lock:
            self._pending.clear()

    def changed(self, db: Database, keys: Iterable[tuple[str, str]]) -> None:
        """The subscriptions of ``keys`` in ``db`` changed (a committed write)."""
        if self._thread is None:
            return
        now = time.monotonic()
        with self._lock:
            for project, queue in keys:
                first, _ = self._pending.get((db, project, queue), (now, now))
                self._pending[(db, project, queue)] = (first, now)
        self._wake.set()

    def _due(self) -> tuple[list[Pending], float | None]:
        """The queues to read now, and how long until the next one is due."""
        now = time.monotonic()
        due: list[Pending] = []
        wait: float | None = None
        with self._lock:
            for key, (first, last) in list(self._pending.items()):
                at = min(last + QUIET_SECONDS, first + MAX_DELAY_SECONDS)
                if at <= now:
                    due.append(key)
                    del self._pending[key]
                else:
                    wait = at - now if wait is None else min(wait, at - now)
        return due, wait

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            due, wait = self._due()
            for db, project, queue in due:
                if self._stopping.is_set():
                    return
                self._refresh(db, project, queue)
            if not due:
                self._wake.wait(wait)

    def _refresh(self, db: Database, project: str, queue: str) -> None:
        try:
            with db.read() as conn:
                recipients.read(conn, db.wiring.recipients.of(db.engine), [(project, queue)],
                                clock.now(), self._confirmed_only)
            self.refreshed += 1
        except Exception as exc:  # the next post reads them, as it would anyway
            LOG.debug("recipients of %s/%s not read again: %s", project, queue, exc)
