"""The in-process half of the outbox: "rows were just committed, come and get them".

``DispatchSignal`` connects the storage transactions of one worker process
to that process's outbox dispatchers, without the database: a transaction
that wrote outbox rows ``set``s it once committed, and every listening
dispatcher wakes at once instead of at its next poll. Rows the notifier
wrote leased to the one dispatcher of this process listening on that
database (``lessee``) are handed to it directly (``hand_over``), so their
first attempt needs no lease statement. The SQL half -- rows, leases,
attempts -- is ``herald.storage.outbox``; delivery is
``herald.storage.dispatcher``.

There is no process-wide signal: the worker creates one (in its
``StorageWiring``, reached by controllers as ``Database.wiring.outbox``)
and gives it to its dispatchers. A signal never touches the database or
the network, and losing one only delays a delivery to the next poll.

Thread-safety: every method may be called from any thread; ``wake``
callbacks run on the committing thread and must not block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

Key = tuple[str, str]


class DispatchSignal:
    """"Outbox rows of (project, queue) just committed in this process".

    Set after a transaction that wrote outbox rows commits. Every listening
    dispatcher of the process is woken at once (instead of at its next
    poll) and told which queues, so it leases their rows this round even
    when another worker owns them in the partition ring: the rows are due
    now, the owner would only find them at its next poll, and SKIP LOCKED
    keeps two dispatchers off the same row. ``is_set``/``clear`` tell tests
    whether anything was signalled at all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flag = threading.Event()
        self._listeners: list[SignalListener] = []

    def lessee(self, engine: Any) -> str | None:
        """The owner to lease new rows of ``engine``'s outbox to: the one
        dispatcher of this process listening on that database, if exactly
        one does (else None: rows go in unleased, and ``set`` wakes)."""
        with self._lock:
            owners = [listener.owner for listener in self._listeners
                      if listener.owner is not None and listener.engine is engine]
        return owners[0] if len(owners) == 1 else None

    def hand_over(self, engine: Any, rows: Sequence[Any]) -> None:
        """Rows committed to ``engine``'s outbox leased to their
        ``lease_owner``: to that listener, which serves them without
        leasing. If it stopped meanwhile they wait for the lease to run out
        (at-least-once)."""
        self._flag.set()
        with self._lock:
            listeners = [listener for listener in self._listeners
                         if rows and listener.owner == rows[0].lease_owner
                         and listener.engine is engine]
        for listener in listeners[:1]:
            listener.hand(rows)

    def set(self, project: str | None = None, queue: str | None = None) -> None:
        self._flag.set()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.notify(None if project is None or queue is None else (project, queue))

    def is_set(self) -> bool:
        return self._flag.is_set()

    def clear(self) -> None:
        self._flag.clear()

    def listen(self, wake: Callable[[], None], owner: str | None = None,
               engine: Any = None) -> SignalListener:
        """Register a dispatcher; ``wake`` is called on the committing thread.
        With ``owner`` and ``engine`` (its lease owner and database) rows
        written to that database are leased to it and handed over."""
        listener = SignalListener(wake, owner, engine)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def unlisten(self, listener: SignalListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)


class SignalListener:
    """One dispatcher's share of a ``DispatchSignal``: the queues signalled
    since it last looked, and the rows handed to it."""

    def __init__(self, wake: Callable[[], None], owner: str | None = None,
                 engine: Any = None) -> None:
        self._wake = wake
        self.owner = owner
        self.engine = engine
        self._lock = threading.Lock()
        self._keys: set[Key] = set()
        self._rows: list[Any] = []

    def hand(self, rows: Sequence[Any]) -> None:
        with self._lock:
            self._rows.extend(rows)
        self._wake()

    def take_rows(self) -> list[Any]:
        """Rows handed over since the last look, leased to ``owner``."""
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def notify(self, key: Key | None) -> None:
        if key is not None:
            with self._lock:
                self._keys.add(key)
        self._wake()

    def take(self) -> set[Key]:
        with self._lock:
            keys, self._keys = self._keys, set()
        return keys
