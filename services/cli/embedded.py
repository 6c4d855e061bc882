"""``herald run``: the REST API, a websocket gateway and one storage worker in one process.

``EmbeddedService`` is a service like the others (``herald.common.lifecycle``):
``start()`` starts the worker, then the API, then the gateway; ``stop()``
drains them in reverse order; ``kill()`` kills them in reverse order. The
three share what one process shares, explicitly: one ``LocalBus`` (the
worker wakes the edges' long polls and pushes to the gateway directly) and
one ``InProcessCaller``, which crosses the RPC boundary in-process through
the same serializer as RabbitMQ. No broker, no fanout.

This module only wires the three together; each keeps its own logic.
Thread-safety: lifecycle methods run on the process's event loop.
"""

from __future__ import annotations

import logging
import os

from oslo_config import cfg

from herald.api.service import APIService
from herald.common import lifecycle
from herald.common.rpc.caller import InProcessCaller
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.storage_api import StorageAPI
from herald.storage.worker import StorageWorker
from herald.ws_gateway.service import WSGatewayService

LOG = logging.getLogger(__name__)

#: Where the embedded SQLite database and tooz files live by default.
DATA_DIR = "data"


class EmbeddedService:
    def __init__(self, conf: cfg.ConfigOpts, member_id: str) -> None:
        # Before the worker's engine exists: the default SQLite file is in it.
        os.makedirs(DATA_DIR, exist_ok=True)
        self.local = LocalBus()
        self.worker = StorageWorker(conf, member_id, serve_rpc=False, local=self.local)
        self._caller = InProcessCaller(self.worker.endpoint, threads=conf.rpc.client_threads)
        storage = StorageAPI(self._caller)
        self.api = APIService(conf, storage, member_id=member_id, local=self.local)
        self.gateway = WSGatewayService(conf, storage, member_id, local=self.local)

    async def start(self) -> None:
        await self.worker.start()
        await self.api.start()
        await self.gateway.start()

    async def stop(self, grace: float | None = None) -> None:
        await self.gateway.stop(grace)
        await self.api.stop(grace)
        await lifecycle.on_thread(self._caller.stop, "rpc-inproc-stop")
        await self.worker.stop(grace)

    async def kill(self) -> None:
        # Each part is killed even if another one's kill fails.
        for part in (self.gateway, self.api):
            try:
                await part.kill()
            except Exception:
                LOG.exception("killing %s failed", type(part).__name__)
        # Storage calls in flight are abandoned: the caller's stop (which
        # waits for them) goes on on a daemon thread nobody waits for.
        lifecycle.on_thread(self._caller.stop, "rpc-inproc-stop")
        await self.worker.kill()
