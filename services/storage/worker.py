"""A storage worker: database, tooz membership, background jobs, RPC server.

``StorageWorker.start()`` brings the pieces up in dependency order (database
reachable, coordinator, migrations under the cluster-wide ``herald-db-migrate``
lock, partitioned group ``herald.storage``, background thread, outbox
dispatcher, long-poll wake-up publisher and RPC server when serving RPC);
``stop()`` takes them down in reverse, finishing in-flight RPC calls first;
``kill()`` does the same without waiting for RPC calls in flight (their
callers re-send them). The three are coroutines (``herald.common.lifecycle``),
their blocking work runs on a thread of its own (at once without a running loop).

Its ``StorageWiring`` (outbox signal, websocket broadcast sender, recipient
warmer, wake-ups, stages) goes with its ``Database`` to every controller; its
``LocalBus`` (``local=``, shared with one process's edges) it wakes and pushes to.

The background thread runs tooz watchers so the partition ring follows
workers joining and leaving, garbage-collects expired rows (messages, claims,
subscriptions) only of the queues this member owns (and the delivery history
and idempotency keys past their retention), and releases, every heartbeat,
the ``release_on_close`` claims of websocket gateways that left ``herald.ws``
(``claim_connections``). By the same ring, the outbox ``dispatcher`` delivers
this member's queues' notifications and the ``redrive_runner`` adopts orphaned
redrives. tooz only spreads work (every read filters by expiry). No query logic.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import tenacity
from oslo_config import cfg
from sqlalchemy import exc as sa_exc
from tooz import coordination as tooz_coordination

from herald.common import coordination, health, lifecycle
from herald.common.rpc import STORAGE_TOPIC, wakeups
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.server import RPCServer
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import backlog, history, migrations, pools, redrive_runner, statistics
from herald.storage.claim_connections import ClaimConnections
from herald.storage.claims import ClaimController
from herald.storage.dispatcher import Dispatcher
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database, engine_from_conf
from herald.storage.health import WorkerReadiness
from herald.storage.outbox import OutboxController
from herald.storage.redrive import RedriveController
from herald.storage.subscriptions import SubscriptionController
from herald.storage.wiring import StorageWiring

LOG = logging.getLogger(__name__)

MIGRATION_LOCK = b"herald-db-migrate"


class StorageWorker:
    def __init__(self, conf: cfg.ConfigOpts, member_id: str, serve_rpc: bool, *,
                 local: LocalBus | None = None,
                 wiring: StorageWiring | None = None) -> None:
        self._conf = conf
        self.member_id = member_id
        self._serve_rpc = serve_rpc
        #: Shared with the edges of this process (embedded mode, harnesses).
        self.local = local if local is not None else LocalBus()
        #: What this worker's controllers share (reached through the database).
        self.wiring = wiring if wiring is not None else StorageWiring(
            wakeups=wakeups.WakeupSender(self.local.waiters))
        # One connection per thread that runs storage calls: the RPC executor's,
        # or in embedded mode the in-process caller's (see engine.pool_size_from_conf).
        self._db = Database(engine_from_conf(conf, serve_rpc), wiring=self.wiring)
        self._coordinator: Any = None
        self._partitioner: Any = None
        self._rpc: RPCServer | None = None
        self._wakeups: wakeups.FanoutPublisher | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = False
        # Read by /readyz: true between the end of start() and the beginning of stop().
        self._serving = False
        self._health: health.HealthListener | None = None
        self._readiness = WorkerReadiness(conf, member_id, self._db.ping,
                                          lambda: self._serving, serve_rpc)
        self._gc = ClaimController(self._db, conf)
        self._subscription_gc = SubscriptionController(self._db, conf)
        self._outbox_gc = OutboxController(self._db)
        # tooz's partitioner is read by the dispatcher thread while the
        # background thread's run_watchers() rebuilds it.
        self._ring_lock = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._redrive = redrive_runner.RedriveRunner(  # redrive tasks of every database
            lambda: [self._router.controller(RedriveController, db)
                     for db in self._router.databases()],
            conf, member_id, self.owns, self.wiring.redrive)
        self._pusher = WSPushClient(conf, use_rpc=serve_rpc, local=self.local.gateways)
        self._gateways_cache: tuple[float, set[str]] = (0.0, set())
        # Shared with the endpoint (which the embedded mode's caller needs right after
        # construction): with [DEFAULT] pooling, jobs run on every pool's database too.
        self._router = pools.Router(self._db, conf)
        # Outbox dispatchers of the pool databases, by pool database.
        self._pool_dispatchers: dict[int, Dispatcher] = {}
        self._pool_dispatchers_lock = threading.Lock()
        self._backlog = backlog.BacklogReporter(conf, member_id, self._router.databases, self.owns)
        self.endpoint = StorageEndpoint(self._db, conf, members=self.members, pusher=self._pusher,
                                        gateway_alive=self.gateway_alive, router=self._router)

    # -- lifecycle --------------------------------------------------------

    def start(self) -> Any:
        """Coroutine-like: ``await worker.start()`` (see the module docstring)."""
        return lifecycle.on_thread(self.start_blocking, "storage-start")

    def stop(self, grace: float | None = None) -> Any:
        """Drain: RPC calls in flight are answered first (``grace`` is not
        needed: oslo.messaging waits for them). Awaitable; safe twice."""
        return lifecycle.on_thread(self.stop_blocking, "storage-stop")

    def kill(self) -> Any:
        """Stop without waiting for RPC calls in flight. Awaitable."""
        return lifecycle.on_thread(self.kill_blocking, "storage-kill")

    def start_blocking(self) -> None:
        self._start_health_listener()
        self._wait_for_database()
        self._coordinator = coordination.start_coordinator(self._conf, self.member_id)
        if self._conf.storage.migrate_on_start:
            with self._coordinator.get_lock(MIGRATION_LOCK):
                migrations.upgrade(self._conf.storage.connection)
        self._partitioner = self._coordinator.join_partitioned_group(
            coordination.STORAGE_GROUP.encode())
        self._stopping.clear()
        self._thread = threading.Thread(target=self._background, name="storage-background",
                                        daemon=True)
        self._thread.start()
        self._dispatcher = Dispatcher(self._db, self._conf, self.member_id, self.owns,
                                      self._pusher, self.gateway_alive)
        self._dispatcher.start()
        self.wiring.broadcasts.start(self._conf, self._pusher, self.gateway_alive)
        self.wiring.warmer.start(self._conf)  # after the sender: both serve posts
        self._redrive.start()
        _quietly("pool dispatchers", self._sync_pool_dispatchers)
        if self._serve_rpc:
            # Wake-ups for the long polls waiting on the edges (fanout casts).
            self._wakeups = wakeups.FanoutPublisher(self._conf)
            self._wakeups.start()
            self.wiring.wakeups.publisher = self._wakeups
            self._rpc = RPCServer(self._conf, self._conf.rpc.topic, self.member_id,
                                  [self.endpoint], nonces=self.local.nonces,
                                  service=STORAGE_TOPIC)
            self._rpc.start()
        self._started = True
        self._serving = True
        LOG.info("storage worker %s started", self.member_id)

    def stop_blocking(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        self._take_down(drain=True)

    def kill_blocking(self) -> None:
        self._take_down(drain=False)

    def _take_down(self, drain: bool) -> None:
        self._serving = False  # /readyz answers 503 from now on
        if self._rpc is not None:
            rpc, self._rpc = self._rpc, None
            _quietly("RPC server stop", rpc.stop if drain else rpc.kill)
        if self._wakeups is not None:
            publisher, self._wakeups = self._wakeups, None
            self.wiring.wakeups.publisher = None
            _quietly("wake-up publisher stop", publisher.stop)
        if self._dispatcher is not None:
            dispatcher, self._dispatcher = self._dispatcher, None
            _quietly("outbox dispatcher stop", dispatcher.stop)
        _quietly("redrive runner stop", self._redrive.stop if drain else self._redrive.abandon)
        _quietly("ws broadcast sender stop", self.wiring.broadcasts.stop)
        _quietly("recipient warmer stop", self.wiring.warmer.stop)
        _quietly("ws push client stop", self._pusher.stop)
        self._stopping.set()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.join(timeout=30)
        # After the background thread, which starts them, has ended.
        with self._pool_dispatchers_lock:
            pool_dispatchers, self._pool_dispatchers = self._pool_dispatchers, {}
        for dispatcher in pool_dispatchers.values():
            _quietly("pool outbox dispatcher stop", dispatcher.stop)
        self._backlog.withdraw()
        if self._partitioner is not None and self._coordinator is not None:
            partitioner, self._partitioner = self._partitioner, None
            _quietly("group leave", self._coordinator.leave_partitioned_group, partitioner)
        if self._coordinator is not None:
            coordinator, self._coordinator = self._coordinator, None
            _quietly("coordinator stop", coordinator.stop)
        if self._started:
            LOG.info("storage worker %s %s", self.member_id, "stopped" if drain else "killed")
        self._started = False
        _quietly("readiness client close", self._readiness.close)
        if self._health is not None:
            listener, self._health = self._health, None
            _quietly("health listener stop", listener.stop)
        _quietly("pool engines dispose", self._router.dispose)
        self._db.dispose()

    # -- membership -------------------------------------------------------

    def members(self) -> list[str]:
        """Live member ids of the storage group (empty before start)."""
        coordinator = self._coordinator
        if coordinator is None:
            return []
        ids = coordinator.get_members(coordination.STORAGE_GROUP.encode()).get()
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in ids)

    def owns(self, project: str, queue: str) -> bool:
        """Whether this member's share of the ring holds the queue (for
        background work; the database still arbitrates every row)."""
        partitioner = self._partitioner
        # Embedded mode runs exactly one worker, so it owns every queue. Its
        # ring can still hold the member of a killed earlier run until the
        # file driver's member timeout, which would delay pushes meanwhile.
        if partitioner is None or not self._serve_rpc:
            return True
        with self._ring_lock:
            return bool(partitioner.belongs_to_self(f"{project}/{queue}"))

    def gateway_alive(self, gateway_id: str) -> bool | None:
        """Whether a websocket gateway is in ``herald.ws`` (None: cannot tell)."""
        if self._pusher.is_local(gateway_id):
            return True
        stamp, members = self._gateways_cache
        if time.monotonic() - stamp > 1.0:
            listed = self._listed_gateways()
            if listed is None:
                return None
            members = listed
            self._gateways_cache = (time.monotonic(), members)
        return gateway_id in members

    def live_gateways(self) -> set[str] | None:
        """The members of ``herald.ws`` listed now (no cache), with this
        process's own gateways; None when tooz cannot tell."""
        members = self._listed_gateways()
        return None if members is None else members | self._pusher.local_gateways()

    def _listed_gateways(self) -> set[str] | None:
        """The members of ``herald.ws`` as tooz lists them (None: it cannot)."""
        coordinator = self._coordinator
        if coordinator is None:
            return None
        try:
            raw = coordinator.get_members(coordination.WS_GROUP.encode()).get()
        except tooz_coordination.GroupNotCreated:
            raw = set()
        except Exception:
            LOG.warning("could not list the websocket gateways", exc_info=True)
            return None
        return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

    def release_dead_gateways_claims(self) -> int:
        """Release the ``release_on_close`` claims of gateways that left
        ``herald.ws``, in the queues this member owns, on every database."""
        released = 0
        for db in [self._db, *self._pool_databases()]:
            if self._stopping.is_set():
                break
            released += self._router.controller(ClaimConnections, db).release_dead_gateways(
                self.live_gateways, self.owns)
        if released:
            LOG.info("released %d claim(s) of websocket gateways that are gone", released)
        return released

    # -- internals --------------------------------------------------------

    def _start_health_listener(self) -> None:
        # First of all, so that liveness answers while the worker still
        # waits for its database (readiness says 503 until start() is done).
        port = self._conf.storage.health_port
        # Embedded mode (no RPC) has the REST API's /healthz and /readyz instead.
        if not port or not self._serve_rpc or self._health is not None:
            return
        probe = health.BlockingProbe(self._readiness.check)
        self._health = health.HealthListener(self._conf.storage.health_bind, port, probe.status)
        self._health.start()

    def _wait_for_database(self) -> None:
        # In compose the database may still be starting: wait a bounded time.
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(sa_exc.OperationalError),
            stop=tenacity.stop_after_delay(60),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5),
            before_sleep=lambda state: LOG.warning(
                "database not reachable yet (%s), retrying", state.outcome.exception()),
            reraise=True,
        )
        if self._db.is_sqlite:
            return  # a file: nothing to wait for
        retrying(self._db.ping)

    def _background(self) -> None:
        interval = self._conf.coordination.heartbeat_interval
        gc_interval = self._conf.storage.gc_interval
        next_gc = time.monotonic() + gc_interval
        analyze_interval = self._conf.storage.analyze_interval
        next_analyze = time.monotonic() + analyze_interval
        while not self._stopping.wait(interval):
            coordinator = self._coordinator
            if coordinator is None:
                return
            _quietly("group membership check", self._ensure_member, coordinator)
            with self._ring_lock:
                _quietly("run_watchers", coordinator.run_watchers)
            _quietly("release of gone gateways' claims", self.release_dead_gateways_claims)
            if time.monotonic() >= next_gc:
                next_gc = time.monotonic() + gc_interval
                _quietly("expiry GC", self.collect_garbage)
            if analyze_interval and time.monotonic() >= next_analyze:
                next_analyze = time.monotonic() + analyze_interval
                for db in [self._db, *self._pool_databases()]:
                    _quietly("planner statistics", statistics.refresh, db)
            _quietly("backlog gauges", self._backlog.refresh_if_due)
            if self._router.enabled:
                # A pool registered through the admin API gets its dispatcher
                # within a heartbeat (one small catalog read each time).
                _quietly("pool dispatchers", self._sync_pool_dispatchers)

    def _ensure_member(self, coordinator: Any) -> None:
        # After a coordination stall a peer may have dropped us from the
        # group; rejoining puts us back in everyone's ring at their next
        # run_watchers (ours included).
        # tooz's join_partitioned_group joins with a weight of 1.
        if coordination.ensure_member(coordinator, coordination.STORAGE_GROUP, self.member_id,
                                      {"weight": 1}):
            LOG.warning("storage worker %s had been dropped from %s (coordination backend "
                        "stalled?); joined again", self.member_id, coordination.STORAGE_GROUP)

    def _pool_databases(self) -> list[Database]:
        """The pool databases (the main one excluded); none without pooling."""
        return [db for db in self._router.databases() if db is not self._db]

    def _sync_pool_dispatchers(self) -> None:
        """One outbox dispatcher per registered pool database: notifications of
        queues placed on a pool are written to that pool's outbox."""
        current = {id(db): db for db in self._pool_databases()}
        with self._pool_dispatchers_lock:
            for key in set(self._pool_dispatchers) - set(current):
                _quietly("pool outbox dispatcher stop", self._pool_dispatchers.pop(key).stop)
            for key, db in current.items():
                if key not in self._pool_dispatchers and not self._stopping.is_set():
                    dispatcher = Dispatcher(db, self._conf, self.member_id, self.owns,
                                            self._pusher, self.gateway_alive)
                    dispatcher.start()
                    self._pool_dispatchers[key] = dispatcher

    def collect_garbage(self) -> int:
        """Delete expired messages, claims and subscriptions of the queues this
        member owns, and delivered outbox rows, delivery history and
        idempotency keys past their retention — in the main database and in
        every pool's."""
        deleted = self._collect_garbage_in(self._db, self._gc, self._subscription_gc,
                                           self._outbox_gc)
        for db in self._pool_databases():
            deleted += self._collect_garbage_in(
                db, self._router.controller(ClaimController, db),
                self._router.controller(SubscriptionController, db), OutboxController(db))
        return deleted

    def _collect_garbage_in(self, db: Database, claims: ClaimController,
                            subscriptions: SubscriptionController,
                            outbox: OutboxController) -> int:
        deleted = 0
        for project, queue in claims.expired_queues():
            if self._stopping.is_set():
                break
            if self.owns(project, queue):
                deleted += claims.collect_garbage(project, queue)
        if deleted:
            LOG.info("expiry GC deleted %d messages", deleted)
        expired = 0
        for project, queue in subscriptions.expired_queues():
            if self._stopping.is_set():
                break
            if self.owns(project, queue):
                expired += subscriptions.collect_garbage(project, queue)
        if expired:
            LOG.info("expiry GC deleted %d subscriptions", expired)
        outbox.collect_garbage(self._conf.notification.outbox_retention)
        history.collect_garbage(db, self._conf.storage.delivery_history_retention)
        return deleted


def _quietly(what: str, func: Any, *args: Any) -> None:
    # Background and shutdown steps must not kill the worker or skip the
    # remaining steps; they log and carry on.
    try:
        func(*args)
    except Exception:
        LOG.exception("%s failed", what)
