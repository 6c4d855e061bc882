"""``herald`` console script: ``api``, ``storage``, ``ws-gateway``, ``run``, ``db upgrade``.

Each subcommand loads the configuration (``--config-file``, the usual
oslo.config search path, ``OS_<GROUP>__<OPTION>`` environment variables),
sets up logging, applies the oslo.messaging patches (``compat``) and runs
one service of ``SERVICES`` the same way (``herald.common.lifecycle``):
``start()``; on SIGTERM or SIGINT (Ctrl-C) ``stop()``, which drains; on a
second signal while it drains, ``kill()``. ``db upgrade`` is a command,
not a service. Each service creates and owns its callers and listeners,
except the process's Prometheus listener (``[metrics]``), which this module
starts before the service and stops after it; this module holds no service
logic of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from oslo_config import cfg

from herald.common import config, coordination, health, lifecycle, log, tracing
from herald.common.metrics import listener as metrics_listener
from herald.common.rpc import bus_auth, compat

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


def _api(conf: cfg.ConfigOpts, member_id: str) -> lifecycle.Service:
    from herald.api.service import APIService

    return APIService(conf, member_id=member_id)


def _ws_gateway(conf: cfg.ConfigOpts, member_id: str) -> lifecycle.Service:
    from herald.ws_gateway.service import WSGatewayService

    # push_rpc: storage workers in other processes cast pushes for this
    # gateway's websocket subscribers to it over RabbitMQ.
    return WSGatewayService(conf, member_id=member_id, push_rpc=True)


def _storage(conf: cfg.ConfigOpts, member_id: str) -> lifecycle.Service:
    from herald.storage.worker import StorageWorker

    return StorageWorker(conf, member_id, serve_rpc=True)


def _embedded(conf: cfg.ConfigOpts, member_id: str) -> lifecycle.Service:
    from herald.cli.embedded import EmbeddedService

    return EmbeddedService(conf, member_id)


#: Subcommand -> the service it runs. Every one is run the same way
#: (``_run``); imports happen in the factories, so a subcommand loads only
#: what its service needs (an edge never imports SQLAlchemy's models).
SERVICES: dict[str, Callable[[cfg.ConfigOpts, str], lifecycle.Service]] = {
    "api": _api,
    "ws-gateway": _ws_gateway,
    "storage": _storage,
    "run": _embedded,
}


async def _run(service: lifecycle.Service) -> None:
    """Start ``service``; on SIGTERM or SIGINT stop it (drain); on a second
    signal while it drains, kill it."""
    try:
        await service.start()
    except Exception:
        # Whatever started is released; the error still ends the process.
        # (SIGTERM while starting exits at once: _stop_cleanly_while_starting.)
        await service.kill()
        raise
    await _wait_for_signal()
    loop = asyncio.get_running_loop()
    again = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, again.set)
    stopping = asyncio.ensure_future(service.stop())
    second = asyncio.ensure_future(again.wait())
    await asyncio.wait({stopping, second}, return_when=asyncio.FIRST_COMPLETED)
    if not stopping.done():
        LOG.warning("second stop signal received, stopping now")
        stopping.cancel()  # the drain ends where it is; kill takes over
        await service.kill()
    else:
        second.cancel()
        stopping.result()


def _db_upgrade(conf: cfg.ConfigOpts) -> int:
    from herald.storage import migrations

    try:
        migrations.upgrade(conf.storage.connection)
    except migrations.UnsupportedDatabase as exc:
        LOG.error("%s", exc)  # a sentence for the operator, not a traceback
        return 2
    LOG.info("database is at the latest schema revision")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = _parse(sys.argv[1:] if argv is None else argv)
    conf = config.load(rest)
    member_id = coordination.new_member_id()
    service = "db" if args.command == "db" else args.command
    log.setup(service, member_id, conf.log_format)
    compat.apply(conf)
    if args.command != "db":
        bus_auth.warn_if_unauthenticated(conf)
    if args.command == "db":
        return _db_upgrade(conf)
    try:
        # OTEL_* variables; off (nothing imported) unless they ask for it.
        tracing.setup(args.command, sql=args.command in ("storage", "run"))
    except RuntimeError as exc:
        LOG.error("tracing: %s", exc)
        return 2
    _stop_cleanly_while_starting()
    # One operator listener per process, for whichever service it runs
    # (herald run: the api, gateway and worker together); off with port 0.
    try:
        listener = metrics_listener.start_from_conf(conf)
    except OSError as exc:
        LOG.error("cannot serve metrics on %s:%s (%s): give each Herald process on this "
                  "machine its own [metrics] port, or 0 to turn metrics off",
                  conf.metrics.bind, conf.metrics.port, exc)
        return 2
    try:
        asyncio.run(_run(SERVICES[args.command](conf, member_id)))
    finally:
        tracing.shutdown()  # export the spans still buffered
        if listener is not None:
            listener.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
