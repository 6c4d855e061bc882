"""The outbox dispatcher of one storage worker: lease, deliver, retry, record.

A dedicated thread runs an asyncio loop (Tornado's HTTP client needs one).
Each round -- every ``[notification] dispatch_interval``, or at once when a
post committed in this process (``outbox.SIGNAL``) -- it:

1. lists the queues with due outbox rows and keeps those whose partition
   this worker owns (``owns(project, queue)``, the tooz ring), plus any
   queue whose rows waited longer than ``takeover_after`` (a dead owner the
   ring has not noticed yet);
2. leases up to ``dispatch_batch_size`` of their rows (the database decides;
   see ``outbox``), skipping subscriptions it is still serving;
3. serves each subscription in its own task, its rows one after the other in
   posting order, with at most ``max_concurrent_deliveries`` attempts in
   flight overall: a slow or dead subscriber holds only its own task.

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
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from herald.common import subscriptions as rules
from herald.common.context import set_current_request_id
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import clock, outbox
from herald.storage.delivery import Deliverer, Outcome
from herald.storage.engine import Database
from herald.storage.subscriptions import SubscriptionController

LOG = logging.getLogger(__name__)

JITTER = 0.1


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
        self._busy: set[str] = set()
        self._held: dict[int, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
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
            self._deliverer.close()

    async def _wait(self) -> None:
        deadline = time.monotonic() + self._opts.dispatch_interval
        while time.monotonic() < deadline and not self._stopping.is_set():
            if outbox.SIGNAL.is_set():
                break
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        outbox.SIGNAL.clear()

    async def _shutdown(self) -> None:
        # In-flight attempts get a moment; the rest of the leased rows go back
        # at once, so the next owner need not wait for the lease to run out.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        try:
            await self._in_db(self._outbox.release, list(self._held), self.member_id)
        except Exception:
            LOG.exception("could not release leased outbox rows")

    # -- one round ---------------------------------------------------------

    async def _round(self) -> None:
        due = await self._in_db(self._outbox.due_queues, self._opts.takeover_after)
        mine = [(project, queue) for project, queue, overdue in due
                if overdue or self._owns(project, queue)]
        if not mine:
            return
        rows = await self._in_db(self._outbox.lease, self.member_id, mine,
                              self._opts.lease_seconds, self._opts.dispatch_batch_size,
                              sorted(self._busy))
        by_subscription: dict[str, list[Any]] = collections.defaultdict(list)
        for row in rows:
            self._held[row.seq] = row
            by_subscription[row.subscription_id].append(row)
        for subscription_id, sub_rows in by_subscription.items():
            self._busy.add(subscription_id)
            task = asyncio.create_task(self._serve(subscription_id, sub_rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, subscription_id: str, rows: list[Any]) -> None:
        """Deliver one subscription's rows in posting order."""
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
            self._busy.discard(subscription_id)
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
            if outcome.gone:
                LOG.info("subscriber %s of %s/%s is gone (%s); removing its subscription",
                         row.subscriber, row.project, row.queue, outcome.error)
                await self._in_db(self._forget, row)
                return False
            if outcome.delivered:
                LOG.info("delivered %s #%d of %s/%s to %s (status %s, attempt %d, %.0f ms)",
                         row.kind, row.seq, row.project, row.queue, row.subscriber,
                         outcome.status, attempts, elapsed * 1000)
                await self._record(row, outcome, attempts, elapsed, delivered=True)
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
                      delivered: bool = False, failed: bool = False,
                      next_attempt: float | None = None) -> None:
        try:
            await self._in_db(self._outbox.record_attempt, row, self.member_id,
                           delivered=delivered, failed=failed, status=outcome.status,
                           error=outcome.error, next_attempt=next_attempt, attempts=attempts,
                           latency_ms=elapsed * 1000.0)
        except Exception:
            # Not recorded: the lease runs out and the row is tried again
            # (a duplicate, never a loss).
            LOG.exception("could not record the delivery attempt of outbox row %d", row.seq)
        if delivered or failed or next_attempt is not None:
            self._held.pop(row.seq, None)

    def _forget(self, row: Any) -> None:
        target = rules.parse_ws_subscriber(row.subscriber)
        if row.subscriber_kind == "websocket" and target is not None:
            self._subscriptions.delete_connection(*target)
        else:
            self._outbox.drop([row.seq])
        self._held.pop(row.seq, None)
