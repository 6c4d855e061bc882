"""A storage worker's redrive runner: adopts redrive tasks and runs them.

One thread per worker. It wakes when this process started a task
(``StorageWiring.redrive``) and at least every ``POLL`` seconds, lists the
running tasks that nobody runs (never adopted, or their runner's heartbeat
older than ``[storage] redrive_stale_after``: its worker died or hangs) in
every database of the worker (one ``RedriveController`` each, from
``controllers``: the pool router's, which know where queues live), and
adopts those whose queue this member owns in tooz's partition ring
(``owns``), the same ring that spreads the other background work. A task
orphaned for three times as long is adopted by any worker (the ring may
still name a dead member until its tooz membership expires). The database
arbitrates adoption (one conditional UPDATE wins), and every batch checks
that its runner still owns the task, so a task never runs twice at once.

It then moves the task's messages batch by batch (``RedriveController.
move_batch``, one transaction each), at most ``max_per_second`` a second,
refreshing the heartbeat with every batch. Stopping the worker gives the
running task up (another worker adopts it at once); killing it leaves the
heartbeat to go stale. Must not contain query logic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from herald.storage import clock
from herald.storage.redrive import RedriveController

LOG = logging.getLogger(__name__)

#: Seconds between two looks for orphaned tasks.
POLL = 1.0
#: Messages per transaction at most.
BATCH = 100


class RedriveRunner:
    def __init__(self, controllers: Callable[[], list[RedriveController]],
                 conf: cfg.ConfigOpts, member_id: str, owns: Callable[[str, str], bool],
                 wake: threading.Event) -> None:
        self._controllers = controllers
        self._conf = conf
        self._member = member_id
        self._owns = owns
        self._wake = wake
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._abandon = False

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="redrive-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in flight, giving the running task up."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.join(timeout=30)

    def abandon(self) -> None:
        """Stop as a killed worker would: the running task is not given up
        (its heartbeat goes stale, then another worker adopts it)."""
        self._abandon = True
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            for controller in self._controllers():
                if self._stopping.is_set():
                    return
                try:
                    self._adopt_and_run(controller)
                except Exception:
                    LOG.exception("redrive runner round failed")

    def _adopt_and_run(self, controller: RedriveController) -> None:
        stale_after = float(self._conf.storage.redrive_stale_after)
        now = clock.now()
        for task in controller.orphans(stale_after):
            long_orphaned = task.heartbeat is not None and now - task.heartbeat > 3 * stale_after
            if not (self._owns(task.project, task.queue) or long_orphaned):
                continue
            if controller.adopt(task.id, self._member, stale_after):
                LOG.info("redrive %s of %s/%s adopted by %s", task.id, task.project, task.queue,
                         self._member)
                self._run(controller, task)
            if self._stopping.is_set():
                return

    def _run(self, controller: RedriveController, task: Any) -> None:
        rate = controller.get(task.project, task.queue, task.id).get("max_per_second")
        size = min(BATCH, rate) if rate else BATCH
        while True:
            if self._stopping.is_set():
                if not self._abandon:
                    controller.release(task.id, self._member)
                return
            started = time.monotonic()
            moved, going_on = controller.move_batch(task.id, self._member, size)
            if not going_on:
                return
            if rate:
                # At most ``rate`` messages a second, a batch at a time.
                self._stopping.wait(max(0.0, moved / rate - (time.monotonic() - started)))
