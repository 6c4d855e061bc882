"""``herald`` console script: ``api``, ``storage``, ``ws-gateway``, ``run``, ``db upgrade``.

Each subcommand loads the configuration (``--config-file``, the usual
oslo.config search path, ``OS_<GROUP>__<OPTION>`` environment variables),
sets up logging, starts its components in order and stops them in reverse
order on SIGTERM or SIGINT (Ctrl-C). This module wires components together;
it holds no service logic of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from oslo_config import cfg

from herald.common import config, coordination, health, log
from herald.common.rpc import compat, wakeups
from herald.common.rpc.caller import InProcessCaller, OsloCaller
from herald.common.rpc.storage_api import StorageAPI

LOG = logging.getLogger("herald.cli")


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the REST API, calling storage workers over RPC")
    sub.add_parser("storage", help="run a storage worker (RPC server, SQL, background jobs)")
    sub.add_parser("ws-gateway",
                   help="serve the WebSocket API, calling storage workers over RPC")
    sub.add_parser("run", help="embedded mode: API, WebSocket gateway and one storage "
                   "worker in one process")
    db = sub.add_parser("db", help="database administration")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply every migration")
    # Everything argparse does not know (--config-file, --config-dir) goes to oslo.config.
    return parser.parse_known_args(list(argv))


def _stop_cleanly_while_starting() -> None:
    """Until the event loop's handlers take over (``_wait_for_signal``), make
    SIGTERM end the process with status 0 instead of killing it (-15): a
    worker may spend a minute waiting for its database, and ``docker stop``
    or systemd must still see a clean stop."""

    def stop(signum: int, frame: object) -> None:
        LOG.info("stop signal received while starting, exiting")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, SQLAlchemy and oslo.messaging
    machinery, caches) out of the cyclic garbage collector's full passes.

    A full collection walks every tracked object: with the start-up heap in
    it, each took 70-200 ms of a service's time (measured at 200 posts/s:
    three in the api and one in each storage worker per 20 s), holding the
    GIL and every request in flight in that process. Frozen, the api's took
    ~2 ms each and the workers' none happened. Start-up objects are kept for
    the life of the process anyway; garbage left by start-up is collected
    first, so nothing frozen is garbage."""
    gc.collect()
    gc.freeze()


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Every command calls this once its service is up: the moment systemd's
    # Type=notify units count as started (a no-op outside systemd).
    _freeze_startup_heap()
    health.sd_notify("READY=1")
    await stop.wait()
    LOG.info("stop signal received, shutting down")
    health.sd_notify("STOPPING=1")


async def _serve_api(conf: cfg.ConfigOpts, storage: StorageAPI) -> None:
    from herald.api.service import APIService

    api = APIService(conf, storage)
    api.start()
    try:
        await _wait_for_signal()
    finally:
        await api.stop()


async def _serve_ws_gateway(conf: cfg.ConfigOpts, storage: StorageAPI, member_id: str) -> None:
    from herald.ws_gateway.service import WSGatewayService

    # push_rpc: storage workers in other processes cast pushes for this
    # gateway's websocket subscribers to it over RabbitMQ.
    gateway = WSGatewayService(conf, storage, member_id, push_rpc=True)
    try:
        await gateway.start()
        await _wait_for_signal()
    finally:
        # Graceful: in-flight requests finish, connections close with 1001,
        # the gateway leaves the herald.ws group.
        await gateway.stop()


async def _serve_embedded(conf: cfg.ConfigOpts, storage: StorageAPI, member_id: str) -> None:
    from herald.api.service import APIService
    from herald.ws_gateway.service import WSGatewayService

    api = APIService(conf, storage)
    gateway = WSGatewayService(conf, storage, member_id)
    api.start()
    try:
        await gateway.start()
        await _wait_for_signal()
    finally:
        await gateway.stop()
        await api.stop()


def _cmd_api(conf: cfg.ConfigOpts, member_id: str) -> None:
    caller = OsloCaller(conf)
    # Long polls waiting here are woken by fanout casts from any worker.
    listener = wakeups.WakeupListener(conf, member_id)
    listener.start()
    try:
        asyncio.run(_serve_api(conf, StorageAPI(caller)))
    finally:
        listener.stop()
        caller.stop()


def _cmd_ws_gateway(conf: cfg.ConfigOpts, member_id: str) -> None:
    caller = OsloCaller(conf)
    listener = wakeups.WakeupListener(conf, member_id)
    listener.start()
    try:
        asyncio.run(_serve_ws_gateway(conf, StorageAPI(caller), member_id))
    finally:
        listener.stop()
        caller.stop()


def _cmd_storage(conf: cfg.ConfigOpts, member_id: str) -> None:
    from herald.storage.worker import StorageWorker

    worker = StorageWorker(conf, member_id, serve_rpc=True)
    worker.start()
    try:
        asyncio.run(_wait_for_signal())
    finally:
        worker.stop()


def _cmd_run(conf: cfg.ConfigOpts, member_id: str) -> None:
    from herald.storage.worker import StorageWorker

    os.makedirs("data", exist_ok=True)
    worker = StorageWorker(conf, member_id, serve_rpc=False)
    worker.start()
    # No RPC here: the worker wakes this process's long polls directly
    # (herald.common.rpc.wakeups.HUB).
    caller = InProcessCaller(worker.endpoint, threads=conf.rpc.client_threads)
    try:
        asyncio.run(_serve_embedded(conf, StorageAPI(caller), member_id))
    finally:
        caller.stop()
        worker.stop()


def _cmd_db_upgrade(conf: cfg.ConfigOpts, member_id: str) -> None:
    from herald.storage import migrations

    migrations.upgrade(conf.storage.connection)
    LOG.info("database is at the latest schema revision")


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = _parse(sys.argv[1:] if argv is None else argv)
    conf = config.load(rest)
    member_id = coordination.new_member_id()
    service = "db" if args.command == "db" else args.command
    log.setup(service, member_id, conf.log_format)
    compat.apply(conf)
    _stop_cleanly_while_starting()
    commands = {
        "api": _cmd_api,
        "storage": _cmd_storage,
        "ws-gateway": _cmd_ws_gateway,
        "run": _cmd_run,
        "db": _cmd_db_upgrade,
    }
    commands[args.command](conf, member_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
