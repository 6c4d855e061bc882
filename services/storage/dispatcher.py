"""The outbox dispatcher of one storage worker: lease, deliver, retry, record.

A dedicated thread runs an asyncio loop (the webhook HTTP client needs one).
Each round -- every ``[notification] dispatch_interval``, or at once when a
post committed in this process (``Database.wiring.outbox``) or the last round leased
a full batch -- it:

0. takes the rows this process's posts committed already leased to it
   (``outbox_signal.DispatchSignal.hand_over``), which need no lease statement;
1. lists the queues with due outbox rows and keeps those whose partition
   this worker owns (``owns(project, queue)``, the tooz ring), those this
   process just committed rows to (signalled: delivering them here saves
   the owner's poll interval of push latency), plus any queue whose rows
   waited longer than ``takeover_after`` (a dead owner the ring has not
   noticed yet). That scan runs at most once per interval; a round woken
   by commits in between takes just the signalled queues;
2. leases up to ``dispatch_batch_size`` of their rows (the database decides;
   see ``outbox``: SKIP LOCKED keeps two dispatchers off one row);
3. serves the rows of each post to each subscription in a task of its own,
   one after the other in request order (notifications.md §2); different
   posts and subscriptions are served concurrently, with at most
   ``max_concurrent_deliveries`` attempts in flight overall: a slow or dead
   subscriber holds only its own tasks, and a busy subscriber's deliveries
   overlap instead of queueing behind each other's round trips.

After a failed attempt the subscription's retry policy (notifications.md §4,
``herald.common.subscriptions.retry_delays``; delays jittered by ±10 % and
scaled by ``retry_delay_scale``) decides: immediate retry, a later
``next_attempt`` (lease released), or ``failed`` once exhausted (logged,
kept for inspection). Every attempt is recorded on the row, in the
delivery history (with its latency) and on the subscription. Leases of
rows in hand are extended while they are served; a crashed dispatcher's
leases run out and its rows are delivered again by whoever owns the queue
then: at-least-once. Log lines carry the request id
of the post that caused the delivery.

This module schedules; transports are ``delivery``, SQL is ``outbox``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from herald.common import metrics
from herald.common import subscriptions as rules
from herald.common.context import set_current_request_id
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import clock, outbox
from herald.storage.delivery import Deliverer, Outcome
from herald.storage.engine import Database
from herald.storage.subscriptions import SubscriptionController

LOG = logging.getLogger(__name__)

JITTER = 0.1
#: Seconds between two transactions recording successful attempts. A
#: delivery is done when its subscriber answered; the record only tells
#: the outbox, the history and the stats. One transaction per delivery or
#: two (group commit without a floor) was a sixth of a worker's CPU at 200
#: pushes/s; rows wait in their lease meanwhile, and a crash before the
#: record delivers them again (at-least-once, as before).
RECORD_INTERVAL = 0.05


class Dispatcher:
    def __init__(self, db: Database, conf: cfg.ConfigOpts, member_id: str,
                 owns: Callable[[str, str], bool], pusher: WSPushClient,
                 gateway_alive: Callable[[str], bool | None]) -> None:
        self._db = db
        self._conf = conf
        self._opts = conf.notification
        self.member_id = member_id
        self._owns = owns
        self._pusher = pusher
        self._gateway_alive = gateway_alive
        self._outbox = outbox.OutboxController(db)
        self._subscriptions = SubscriptionController(db, conf)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Database calls are blocking: a small pool of their own.
        self._db_threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="outbox-db")
        self._held: dict[int, Any] = {}
        # Successful attempts waiting to be recorded, and the task doing it.
        self._to_record: list[outbox.Delivered] = []
        self._recorder: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: When the next round scans every queue (``_round``).
        self._next_scan = 0.0
        #: Queues whose last lease was full: the next round leases there again.
        self._lease_again: set[tuple[str, str]] = set()
        #: Wakes the loop from another thread (set once the loop runs).
        self._signal_listener_wake: Callable[[], None] = lambda: None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._signal_listener_wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._db_threads.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:
            LOG.exception("outbox dispatcher crashed")
        finally:
            loop.close()

    async def _in_db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_threads, lambda: func(*args, **kwargs))

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()

        def wake() -> None:  # on the committing thread
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closing
                pass

        # Rows posted in this process go in leased to us (DispatchSignal.lessee).
        self._signal = self._db.wiring.outbox.listen(wake, self.member_id, self._db.engine)
        self._signal_listener_wake = wake
        try:
            await self._dispatch()
        finally:
            self._db.wiring.outbox.unlisten(self._signal)

    async def _dispatch(self) -> None:
        self._semaphore = asyncio.Semaphore(self._opts.max_concurrent_deliveries)
        self._deliverer = Deliverer(self._conf, self._pusher, self._gateway_alive)
        next_extend = time.monotonic() + self._opts.lease_seconds / 3
        try:
            while not self._stopping.is_set():
                try:
                    await self._round()
                    if time.monotonic() >= next_extend:
                        next_extend = time.monotonic() + self._opts.lease_seconds / 3
                        await self._in_db(self._outbox.extend_lease, list(self._held),
                                       self.member_id, self._opts.lease_seconds)
                except Exception:
                    LOG.exception("outbox dispatch round failed")
                await self._wait()
            await self._shutdown()
        finally:
            await self._deliverer.close()

    async def _wait(self) -> None:
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._opts.dispatch_interval)
        self._wake.clear()

    async def _shutdown(self) -> None:
        # In-flight attempts get a moment; the rest of the leased rows go back
        # at once, so the next owner need not wait for the lease to run out.
        # No more rows are leased to us from here on.
        self._db.wiring.outbox.unlisten(self._signal)
        for row in self._signal.take_rows():
            self._held[row.seq] = row
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        if self._recorder is not None:  # delivered: recorded, not released
            await asyncio.wait({self._recorder}, timeout=5.0)
        try:
            await self._in_db(self._outbox.release, list(self._held), self.member_id)
        except Exception:
            LOG.exception("could not release leased outbox rows")

    # -- one round ---------------------------------------------------------

    async def _round(self) -> None:
        # Rows committed in this process already leased to us: no lease statement.
        self._serve_rows(self._signal.take_rows())
        signalled = self._signal.take()
        again, self._lease_again = self._lease_again, set()
        if time.monotonic() >= self._next_scan:
            # Every queue with due rows, once per dispatch_interval: owned
            # queues, retries come due, rows a dead owner left.
            self._next_scan = time.monotonic() + self._opts.dispatch_interval
            due = await self._in_db(self._outbox.due_queues, self._opts.takeover_after)
            mine = [(project, queue) for project, queue, overdue in due
                    if overdue or (project, queue) in signalled or (project, queue) in again
                    or self._owns(project, queue)]
        else:
            # Woken in between by this process's commits: their queues are
            # where the new rows are (``lease`` takes only due ones). A scan
            # of the whole outbox per commit cost a GROUP BY per round.
            mine = sorted(signalled | again)
        if not mine:
            return
        rows = await self._in_db(self._outbox.lease, self.member_id, mine,
                                 self._opts.lease_seconds, self._opts.dispatch_batch_size)
        self._serve_rows(rows)
        if len(rows) >= self._opts.dispatch_batch_size:
            self._lease_again = set(mine)  # more may be due there: lease again at once
            self._wake.set()

    def _serve_rows(self, rows: list[Any]) -> None:
        """Serve rows leased to us: one task per (subscription, post), a
        post's rows in order, the rest concurrently. Rows come sorted by
        seq, so dict order is posting order.

        A post is its request id and its time: the rows of one post share
        both. The edges give every request its own id, but a request id
        alone is not a post: two posts made with one in-process context
        share it, and keyed by it alone they queued behind each other's
        round trips whenever one lease took them together."""
        by_post: dict[tuple[str, str, float], list[Any]] = collections.defaultdict(list)
        for row in rows:
            self._held[row.seq] = row
            by_post[(row.subscription_id, row.request_id, row.created)].append(row)
        for post_rows in by_post.values():
            task = asyncio.create_task(self._serve(post_rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, rows: list[Any]) -> None:
        """Deliver one post's rows to one subscription, in order."""
        try:
            for index, row in enumerate(rows):
                if self._stopping.is_set():
                    return
                if not await self._deliver(row):
                    # The subscriber is gone: its other rows went with it.
                    for rest in rows[index + 1:]:
                        self._held.pop(rest.seq, None)
                    return
        finally:
            for row in rows:
                self._held.pop(row.seq, None)

    async def _deliver(self, row: Any) -> bool:
        """Attempt ``row`` until delivered, rescheduled or failed; False when
        its subscriber turned out to be gone."""
        set_current_request_id(row.request_id or "-")
        options = json.loads(row.options) if row.options else {}
        delays = rules.retry_delays(options.get("_retry_policy") or {})
        attempts = int(row.attempts or 0)
        while True:
            async with self._semaphore:
                started = time.monotonic()
                outcome = await self._deliverer.attempt(row)
            attempts += 1
            elapsed = time.monotonic() - started
            if metrics.ENABLED:
                _count_attempt(row, outcome, attempts > len(delays))
            if outcome.gone:
                LOG.info("subscriber %s of %s/%s is gone (%s); removing its subscription",
                         row.subscriber, row.project, row.queue, outcome.error)
                await self._in_db(self._forget, row)
                return False
            if outcome.delivered:
                LOG.info("delivered %s #%d of %s/%s to %s (status %s, attempt %d, %.0f ms)",
                         row.kind, row.seq, row.project, row.queue, row.subscriber,
                         outcome.status, attempts, elapsed * 1000)
                self._record_delivered(outbox.Delivered(row, attempts, outcome.status,
                                                        elapsed * 1000.0))
                return True
            if not outcome.retry or attempts > len(delays):
                LOG.error("giving up on %s #%d of %s/%s to %s after %d attempts: %s",
                          row.kind, row.seq, row.project, row.queue, row.subscriber,
                          attempts, outcome.error)
                await self._record(row, outcome, attempts, elapsed, failed=True)
                return True
            delay = delays[attempts - 1] * self._opts.retry_delay_scale
            LOG.warning("delivery of %s #%d to %s failed (attempt %d: %s); retry in %.2f s",
                        row.kind, row.seq, row.subscriber, attempts, outcome.error, delay)
            if delay <= 0:
                await self._record(row, outcome, attempts, elapsed)
                continue
            delay *= random.uniform(1 - JITTER, 1 + JITTER)
            await self._record(row, outcome, attempts, elapsed,
                               next_attempt=clock.now() + delay)
            return True

    async def _record(self, row: Any, outcome: Outcome, attempts: int, elapsed: float, *,
                      failed: bool = False, next_attempt: float | None = None) -> None:
        """Record a failed attempt (successes: ``_record_delivered``)."""
        try:
            await self._in_db(self._outbox.record_attempt, row, self.member_id,
                              delivered=False, failed=failed, status=outcome.status,
                              error=outcome.error, next_attempt=next_attempt,
                              attempts=attempts, latency_ms=elapsed * 1000.0)
        except Exception:
            # Not recorded: the lease runs out and the row is tried again
            # (a duplicate, never a loss).
            LOG.exception("could not record the delivery attempt of outbox row %d", row.seq)
        if failed or next_attempt is not None:
            self._held.pop(row.seq, None)

    def _record_delivered(self, item: outbox.Delivered) -> None:
        """Queue a successful attempt to be recorded with the others that end
        meanwhile: one transaction of a few statements per group, at most
        one per ``RECORD_INTERVAL`` while deliveries keep coming, the first
        after a quiet spell at once. The serving task goes on at once; the
        groups are recorded in delivery order, so a later row of a post is
        never recorded before an earlier one."""
        self._to_record.append(item)
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_pending())

    async def _record_pending(self) -> None:
        while self._to_record:
            started = time.monotonic()
            group, self._to_record = self._to_record, []
            try:
                await self._in_db(self._outbox.record_deliveries, group, self.member_id)
            except Exception:
                # Not recorded: the leases run out and the rows are delivered
                # again (duplicates, never a loss).
                LOG.exception("could not record %d deliveries", len(group))
            if self._to_record and not self._stopping.is_set():
                await asyncio.sleep(RECORD_INTERVAL - (time.monotonic() - started))

    def _forget(self, row: Any) -> None:
        target = rules.parse_ws_subscriber(row.subscriber)
        if row.subscriber_kind == "websocket" and target is not None:
            self._subscriptions.delete_connection(*target)
        else:
            self._outbox.drop([row.seq])
        self._held.pop(row.seq, None)


_DELIVERIES = metrics.ChildCache(metrics.SUBSCRIPTION_DELIVERIES)


def _count_attempt(row: Any, outcome: Outcome, last_try: bool) -> None:
    """``herald_subscription_deliveries_total``: the kind of subscriber and
    what became of this attempt (retry, or failed once the policy gives up)."""
    if row.subscriber_kind == "websocket":
        kind = "websocket"
    else:
        kind = "email" if str(row.subscriber).startswith("mailto:") else "webhook"
    if outcome.gone:
        result = "gone"
    elif outcome.delivered:
        result = "delivered"
    else:
        result = "failed" if not outcome.retry or last_try else "retry"
    _DELIVERIES(kind, result).inc()
