"""Re-sending a storage call no worker answers: a timer and the broker's word.

A call an edge sends to the storage topic is taken by one worker. If that
worker dies (SIGKILL, OOM, a lost host) or stops running (SIGSTOP, a long
GC or swap storm) with the call in hand, the call's answer never comes and
its client would wait the whole ``[rpc] call_timeout`` for a 503. Instead,
``Resender.send`` sends the call again -- to the topic, where RabbitMQ
hands it to a worker that is taking calls (``compat`` sets the consumers'
prefetch, so a stopped worker holds only a few) -- when either:

- the broker says a worker went away: ``WorkerWatch`` reads the number of
  consumers of the storage topic's queue every ``[rpc] worker_check_interval``
  seconds, and a drop (a worker's broker connection closed) re-sends every
  call in flight at once (it cannot know which were on that worker; sending
  one twice is harmless, see below);
- or the call is still unanswered a while after its last send (a worker
  that stopped but still holds its connection): ``[rpc] resend_after``
  seconds, or longer while the workers answer slowly. ``AnswerTimes``
  estimates that wait as TCP estimates its retransmission timeout (RFC
  6298: smoothed answer time plus four deviations, learned only from calls
  answered on their first send, doubled after each re-send until the next
  such answer). A fixed timer re-sent up to 3x the work exactly when the
  workers were saturated: 1,000 websocket connections subscribing at once
  made hundreds of batches be sent two and three times.

At most ``MAX_SENDS`` sends per call; the first answer wins and later ones
are dropped. Only calls the table of operations declares re-sendable
(``operations.RESENDABLE``) are sent again: reads, writes whose second run
changes nothing, and ``message_post``, which the worker records under the
call's operation id (``RequestContext.operation_id``, the same on every
send, with ``attempt`` counting them) so a second send gets the first
one's ids (``herald.storage.idempotency``), ``claim_create`` (its claim's
id is the operation id), and ``operations.REPLAYED`` (a pop, a create...),
whose reply the worker records under the operation id for a re-send to
answer. Others wait for their one send.

An answer, even an error, ends the call: only silence is re-sent.

Must not know oslo.messaging's call path (``OsloCaller`` passes a function
that starts one send) nor the operations' meaning beyond the table.
Thread-safety: ``Resender`` runs on its edge's event loop; ``WorkerWatch``
polls on a thread of its own and reaches the loop through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import amqp.exceptions
import kombu
import oslo_messaging
from oslo_config import cfg

from herald.common import errors

LOG = logging.getLogger(__name__)

#: Sends of one call at most (the first and two re-sends).
MAX_SENDS = 3

#: Starts send number ``n`` (1, 2, ...) of a call; the future is its outcome.
Send = Callable[[int], "asyncio.Future[Any]"]


class WorkerWatch:
    """How many storage workers consume the topic, as RabbitMQ counts them.

    ``on_loss`` is called (from the watch's thread) whenever the count
    drops. A connection to the broker of its own, one passive queue declare
    per interval: nothing is created, nothing consumed."""

    def __init__(self, conf: cfg.ConfigOpts, on_loss: Callable[[], None]) -> None:
        self._conf = conf
        self._on_loss = on_loss
        self._interval = conf.rpc.worker_check_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last count read (None: not read yet, or the broker is away).
        self.consumers: int | None = None
        #: Drops seen since start (for tests and logs).
        self.losses = 0

    def start(self) -> None:
        if self._thread is None and self._interval > 0:
            self._thread = threading.Thread(target=self._run, name="rpc-worker-watch",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _connection(self) -> kombu.Connection:
        url = oslo_messaging.TransportURL.parse(self._conf, self._conf.transport_url)
        host = url.hosts[0] if url.hosts else None
        return kombu.Connection(
            hostname=getattr(host, "hostname", None) or "localhost",
            port=getattr(host, "port", None) or 5672,
            userid=getattr(host, "username", None) or "guest",
            password=getattr(host, "password", None) or "guest",
            virtual_host=url.virtual_host or "/", transport="pyamqp", connect_timeout=2)

    def _run(self) -> None:
        topic = self._conf.rpc.topic
        while not self._stopping.is_set():
            try:
                with self._connection() as connection:
                    channel = connection.channel()
                    while not self._stopping.wait(self._interval):
                        try:
                            _, _, count = channel.queue_declare(queue=topic, passive=True)
                        except amqp.exceptions.ChannelError:
                            # No such queue yet (no worker ever started):
                            # the channel is closed, take another.
                            count, channel = 0, connection.channel()
                        self._seen(count)
            except Exception as exc:  # the broker is away: calls time out as they would
                LOG.debug("worker watch lost the broker: %s", exc)
                self.consumers = None
                self._stopping.wait(1.0)

    def _seen(self, count: int) -> None:
        previous, self.consumers = self.consumers, count
        if previous is not None and count < previous:
            self.losses += 1
            LOG.info("a storage worker left the broker (%d -> %d consumers): re-sending "
                     "the calls in flight", previous, count)
            self._on_loss()


def _stopping() -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable("The service is stopping. Please try again in a few seconds.")


class AnswerTimes:
    """How long to wait for an answer before a re-send (RFC 6298's estimator).

    Not below ``floor`` (``[rpc] resend_after``): a quick worker that stops
    is found as fast as before. On the loop only: no locks."""

    #: RFC 6298's gains and deviation factor.
    ALPHA, BETA, K = 0.125, 0.25, 4.0
    #: The most a run of re-sends multiplies the wait by.
    MAX_BACKOFF = 16.0

    def __init__(self, floor: float) -> None:
        self._floor = floor
        self._smoothed: float | None = None
        self._deviation = 0.0
        self._backoff = 1.0

    def observe(self, seconds: float) -> None:
        """A call answered ``seconds`` after its only send."""
        if self._smoothed is None:
            self._smoothed, self._deviation = seconds, seconds / 2
        else:
            self._deviation += self.BETA * (abs(self._smoothed - seconds) - self._deviation)
            self._smoothed += self.ALPHA * (seconds - self._smoothed)
        self._backoff = 1.0

    def resent(self) -> None:
        """A call was sent again: wait longer until an answer says otherwise."""
        self._backoff = min(self._backoff * 2, self.MAX_BACKOFF)

    def resend_after(self) -> float:
        estimate = (self._floor if self._smoothed is None
                    else self._smoothed + self.K * self._deviation)
        return max(self._floor, estimate) * self._backoff


class Resender:
    """Sends a call, and again while it stays unanswered (module docstring)."""

    def __init__(self, conf: cfg.ConfigOpts, timeout: float, watch: bool = True) -> None:
        self._resend_after = conf.rpc.resend_after
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        #: One future per call in flight, set when a worker went away.
        self._in_flight: set[asyncio.Future[None]] = set()
        self.watch = WorkerWatch(conf, self._lost_threadsafe) if watch else None
        #: Re-sends made (for tests and logs).
        self.resent = 0
        self.answer_times = AnswerTimes(self._resend_after)
        #: Set by ``abandon``: every call answers 503 now.
        self._abandoned = False

    def start(self) -> None:
        if self.watch is not None and self._resend_after > 0:
            self.watch.start()

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()

    def abandon(self) -> None:
        """Give up every call in flight and every later one (a stopping
        service's deadline): they raise ServiceUnavailable. On the loop."""
        self._abandoned = True
        self._lost()

    def _lost_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._lost)

    def _lost(self) -> None:
        for lost in self._in_flight:
            if not lost.done():
                lost.set_result(None)

    async def send(self, send: Send, resendable: bool, what: str) -> Any:
        """The first answer to ``send(1)``, ``send(2)``...; ServiceUnavailable
        when none came within the timeout."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._abandoned:
            raise _stopping()
        started = last_send = loop.time()
        deadline = started + self._timeout
        resend = resendable and self._resend_after > 0
        pending: set[asyncio.Future[Any]] = {send(1)}
        sends = 1
        lost: asyncio.Future[None] = loop.create_future()
        self._in_flight.add(lost)
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    LOG.warning("storage call %s not answered within %.1f s (%d send(s))",
                                what, self._timeout, sends)
                    raise errors.ServiceUnavailable(
                        "The storage service did not answer in time. "
                        "Please try again in a few seconds.")
                can_resend = resend and sends < MAX_SENDS
                # Read again on every turn: answers to other calls meanwhile
                # may have taught the estimator to wait longer.
                resend_at = last_send + self.answer_times.resend_after()
                wait = min(deadline, resend_at) - now if can_resend else deadline - now
                waiting = pending | {lost} if can_resend or not lost.done() else pending
                done, _ = await asyncio.wait(waiting, timeout=max(wait, 0.0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if self._abandoned:
                    raise _stopping()
                answered = [f for f in done if f is not lost]
                for future in answered:
                    pending.discard(future)
                    if future.exception() is None or not pending:
                        if sends == 1:  # unambiguous: which send answered (Karn)
                            self.answer_times.observe(loop.time() - started)
                        return future.result()  # an answer (or the last error)
                if answered:
                    continue  # an error while another send is still out
                if not can_resend:
                    continue
                if not lost.done() and loop.time() < last_send + self.answer_times.resend_after():
                    continue  # the wait grew meanwhile
                if lost.done():
                    self._in_flight.discard(lost)
                    lost = loop.create_future()
                    self._in_flight.add(lost)
                sends += 1
                self.resent += 1
                self.answer_times.resent()
                LOG.info("re-sending storage call %s (send %d)", what, sends)
                pending.add(send(sends))
                last_send = loop.time()
        finally:
            self._in_flight.discard(lost)
