"""Wake-ups for long polls: "messages may be available in (project, queue)".

A long poll (``wait=<seconds>`` on claim create and message list, REST and
websocket) is held by the edge that received it -- never by a storage worker
or an RPC thread. The edge registers a waiter for the queue, tries the
storage call once, and if that found nothing sleeps until a wake-up for the
queue arrives (or the deadline), then tries again. This module carries the
wake-ups from the storage workers to the waiting edges:

* ``WaiterHub``: the waiters of the edges sharing it, by (project,
  queue). ``notify`` is thread-safe and wakes each waiter on its own event
  loop. There is no process-wide hub: each edge service creates one or is
  given one (embedded mode: one ``LocalBus`` shared with the worker), and
  exposes it as ``.waiters`` (``waiting(project, queue)`` counts parked
  long polls; each park logs ``long poll parked`` at DEBUG).
* ``WakeupSender.messages_available(project, queue)``: called by a storage
  worker right after a transaction that made messages available committed
  (a post, a released claim). It notifies the worker's local hub at once
  (embedded mode, tests: the edges are in this process) and hands the key
  to the worker's ``FanoutPublisher``, while one runs.
* ``FanoutPublisher``: a thread that coalesces the pending keys and sends
  them in one oslo.messaging **fanout cast** ``messages_available(queues)``
  to topic ``<[rpc] topic>.wakeup``: every edge process that listens gets
  it, whichever worker committed the post. Casts are fire-and-forget; a lost
  wake-up only makes that long poll last until its deadline, where the edge
  tries once more anyway.
* ``WakeupListener``: the edge's RPC server on that topic (fanout), serving
  ``WakeupEndpoint.messages_available`` by notifying its edge's hub.
* ``long_poll(...)``: the edge-side loop shared by REST and websocket.

Thread-safety: ``WaiterHub``, ``WakeupSender`` and ``FanoutPublisher.add``
may be called from any thread; ``long_poll`` runs on an event loop.

Nothing here queries the database or decides what a message is; a wake-up
is only a hint to try again. Must not block an event loop: casts happen on
the publisher's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import oslo_messaging
from oslo_config import cfg

from herald.common.context import RequestContext
from herald.common.errors import BadRequest
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, bus_auth
from herald.common.rpc.serializer import JsonSerializer

LOG = logging.getLogger(__name__)

WAKEUP_API_VERSION = "1.0"
#: The longest a long poll may wait (seconds), REST and websocket alike.
MAX_WAIT = 20
#: Seconds between two wake-up casts of one worker. Every cast is received
#: and decoded by every edge process whether or not anything waits there
#: (~1 ms of CPU each side), so under a stream of posts one cast per commit
#: cost the edges more CPU than the posts themselves (the idle ws-gateway
#: used 0.2 cores during a REST post benchmark; still ~0.1 at one cast per
#: 25 ms). Keys pile up in between; a waiter is woken at most this much
#: later, which a long poll (a pull, not a push) can afford.
MIN_CAST_INTERVAL = 0.1

T = TypeVar("T")
Key = tuple[str, str]


def wakeup_topic(conf: cfg.ConfigOpts) -> str:
    """Derived from ``[rpc] topic`` so that deployments (and test runs) sharing a
    broker but not a storage topic never wake each other."""
    return f"{conf.rpc.topic}.wakeup"


def validate_wait(value: Any) -> int:
    """The ``wait`` of a long poll: an integer 0..MAX_WAIT (0: do not wait)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WAIT:
        raise BadRequest(f"Wait must be at least 0 and may not be greater than {MAX_WAIT} "
                         "seconds.")
    return value


# -- edge side: waiters ------------------------------------------------------


class Waiter:
    """One long poll's wake-up flag, set from any thread, awaited on its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: object = None) -> None:
        self.loop = loop
        self.owner = owner
        self.event = asyncio.Event()
        #: Set by ``WaiterHub.release``: the service stops, answer now.
        self.released = False

    def wake(self) -> None:
        # Called on arbitrary threads (RPC server, storage worker).
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # loop closed: nobody waits any more
            pass


class WaiterHub:
    """The waiters of one process, by (project, queue). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[Key, set[Waiter]] = {}

    @contextlib.contextmanager
    def subscribe(self, project: str, queue: str, owner: object = None) -> Iterator[Waiter]:
        """Register a waiter for the queue while the block runs (on a loop);
        ``owner`` (the service holding the request) can ``release`` it."""
        waiter = Waiter(asyncio.get_running_loop(), owner)
        key = (project, queue)
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    def notify(self, project: str, queue: str) -> int:
        """Wake every waiter of the queue; returns how many there were."""
        with self._lock:
            waiters = list(self._waiters.get((project, queue), ()))
        for waiter in waiters:
            waiter.wake()
        return len(waiters)

    def release(self, owner: object) -> int:
        """End the waits of ``owner``'s long polls now (it is stopping): each
        answers with what it has instead of holding the shutdown up."""
        with self._lock:
            waiters = [w for ws in self._waiters.values() for w in ws if w.owner is owner]
        for waiter in waiters:
            waiter.released = True
            waiter.wake()
        return len(waiters)

    def waiting(self, project: str | None = None, queue: str | None = None) -> int:
        """How many long polls wait (on one queue): for tests and health."""
        with self._lock:
            if project is None:
                return sum(len(w) for w in self._waiters.values())
            return len(self._waiters.get((project, queue or ""), ()))


async def long_poll(project: str, queue: str, wait: float,
                    attempt: Callable[[], Awaitable[T]],
                    found: Callable[[T], bool],
                    gone: asyncio.Event | None = None,
                    owner: object = None,
                    *, hub: WaiterHub) -> T:
    """Run ``attempt`` until ``found(result)``, a wake-up at a time, for at
    most ``wait`` seconds; then return the last result.

    The waiter is registered *before* the first attempt and its flag cleared
    before each one, so a post committed while an attempt runs is never
    missed. At the deadline one last attempt runs (it catches messages that
    became available without a post: expired claims, ended delays). When
    ``gone`` is set (the client left) no further attempt starts and the last
    result is returned; the caller must not hand out what it got. When the
    ``owner`` service releases its waiters (stopping), the last result is
    returned at once. ``hub`` is the waiter hub of the edge service
    holding the request.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with hub.subscribe(project, queue, owner) as waiter:
        result = await attempt()
        while not found(result):
            remaining = deadline - loop.time()
            if remaining <= 0 or waiter.released or (gone is not None and gone.is_set()):
                return result
            # An event tests (and operators at DEBUG) can wait for instead
            # of sleeping: this poll now waits for a wake-up.
            LOG.debug("long poll parked: project %s queue %s", project, queue,
                      extra={"project": project, "queue": queue})
            woken = asyncio.ensure_future(waiter.event.wait())
            watchers: set[asyncio.Future[Any]] = {woken}
            left = asyncio.ensure_future(gone.wait()) if gone is not None else None
            if left is not None:
                watchers.add(left)
            try:
                await asyncio.wait(watchers, timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for watcher in watchers:
                    watcher.cancel()
            if waiter.released or (gone is not None and gone.is_set()):
                return result
            waiter.event.clear()
            result = await attempt()
    return result


# -- edge side: the fanout listener -------------------------------------------


class WakeupEndpoint:
    """oslo.messaging endpoint of the fanout cast (runs on RPC threads)."""

    target = oslo_messaging.Target(version=WAKEUP_API_VERSION)

    def __init__(self, hub: WaiterHub) -> None:
        self._hub = hub

    def messages_available(self, ctxt: Any, queues: list[list[str]]) -> None:
        for project, queue in queues:
            self._hub.notify(project, queue)


class WakeupListener:
    """An edge process's consumer of wake-ups (fanout, so every edge gets each).

    Started on a thread of its own: oslo.messaging's listener connects to the
    broker retrying without end, and an edge must come up (and answer 503)
    while the broker is down. Until it is connected long polls simply last
    until their deadline."""

    def __init__(self, conf: cfg.ConfigOpts, member_id: str, hub: WaiterHub) -> None:
        # Imported here: the server module pulls in the RPC server machinery,
        # which an edge without RabbitMQ (embedded mode) never needs.
        from herald.common.rpc.server import RPCServer

        # A fanout cast reaches every edge with one nonce: a replay memory
        # shared by the deployment would run it on the first edge only.
        self._server = RPCServer(conf, wakeup_topic(conf), member_id, [WakeupEndpoint(hub)],
                                 shared_nonces=False)
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._start, name="wakeup-listener",
                                        daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._server.start()
            self._started.set()
        except Exception:
            LOG.exception("the wake-up listener could not start; long polls will "
                          "wait until their deadline")

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def stop(self) -> None:
        if self._started.is_set():
            self._server.stop()


# -- storage side --------------------------------------------------------------


class FanoutPublisher:
    """Sends the pending wake-ups as fanout casts, from a thread of its own.

    Keys pile up in a set while a cast is in flight and for
    ``MIN_CAST_INTERVAL`` after it, so a burst of posts costs one cast, and
    the worker's RPC threads never wait for the broker."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf
        self._pending: set[Key] = set()
        self._lock = threading.Lock()
        self._signal = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Any = None
        self._client: Any = None

    def add(self, project: str, queue: str) -> None:
        with self._lock:
            self._pending.add((project, queue))
        self._signal.set()

    def start(self) -> None:
        self._transport = oslo_messaging.get_rpc_transport(
            self._conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)
        target = oslo_messaging.Target(topic=wakeup_topic(self._conf),
                                       version=WAKEUP_API_VERSION, fanout=True)
        self._client = bus_auth.SigningClient.from_conf(oslo_messaging.get_rpc_client(
            self._transport, target, serializer=JsonSerializer(),
            retry=self._conf.rpc.call_retry), self._conf)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="wakeup-publisher",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ctxt = RequestContext(project_id="", request_id="req-wakeup")
        while not self._stopping.is_set():
            self._signal.wait(0.5)
            self._signal.clear()
            with self._lock:
                keys, self._pending = self._pending, set()
            if not keys:
                continue
            try:
                self._client.cast(ctxt, "messages_available",
                                  queues=[list(key) for key in sorted(keys)])
            except Exception as exc:  # a lost wake-up delays a long poll, no more
                LOG.warning("could not send %d wake-up(s): %s", len(keys), exc)
            self._stopping.wait(MIN_CAST_INTERVAL)

    def stop(self) -> None:
        self._stopping.set()
        self._signal.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None


class WakeupSender:
    """A storage worker's outlet for "messages may be available in (project, queue)".

    One per worker, created by it and reached by its controllers through
    ``Database.events``. ``messages_available`` wakes the long polls of
    ``hub`` (the edges of this process, embedded mode and tests) at once and
    queues the key on ``publisher`` (the worker's fanout publisher, set
    while it runs). Never blocks; any thread."""

    def __init__(self, hub: WaiterHub | None = None) -> None:
        self.hub = hub
        #: Set by the worker between its start and its stop (an attribute
        #: rebinding: atomic, so no lock).
        self.publisher: FanoutPublisher | None = None

    def messages_available(self, project: str, queue: str) -> None:
        """After a commit that made messages of the queue available."""
        if self.hub is not None:
            self.hub.notify(project, queue)
        publisher = self.publisher
        if publisher is not None:
            publisher.add(project, queue)
