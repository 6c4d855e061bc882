"""Websocket dead-letter redrive actions (docs/dead-letter-redrive.md).

``queue_redrive`` (body ``queue_name`` and any of ``destination``,
``max_per_second``, ``limit``) starts a redrive and answers **202** with the
task, as REST does (``href`` is where REST shows it); a second one while
the first runs is **409**. ``queue_redrive_get`` (``queue_name``,
``redrive_id``) answers 200 with the task's progress, ``status`` ``done`` at
the end. Validation is ``herald.common.edge.redrive``'s, shared with REST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from herald.common.edge import headers, redrive, shapes
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway.actions import ActionRequest

Reply = tuple[int, Any]


class RedriveActions:
    def __init__(self, storage: StorageAPI) -> None:
        self._storage = storage
        self.handlers: dict[str, Callable[[ActionRequest], Awaitable[Reply]]] = {
            "queue_redrive": self.queue_redrive,
            "queue_redrive_get": self.queue_redrive_get,
        }

    async def queue_redrive(self, req: ActionRequest) -> Reply:
        queue = req.body["queue_name"]
        headers.websocket_queue_identification(queue, req.ctxt.project_id)
        options = {key: value for key, value in req.body.items() if key != "queue_name"}
        args = redrive.redrive_request(options, queue, req.ctxt.project_id)
        task = await self._storage.queue_redrive(req.ctxt, queue, **args)
        return 202, shapes.redrive_task(queue, task)

    async def queue_redrive_get(self, req: ActionRequest) -> Reply:
        queue = req.body["queue_name"]
        task = await self._storage.queue_redrive_get(req.ctxt, queue, req.body["redrive_id"])
        return 200, shapes.redrive_task(queue, task)
