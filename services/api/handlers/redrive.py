"""Dead-letter redrive (docs/dead-letter-redrive.md):

* ``POST /v2/queues/{dlq}/redrive`` with ``{}`` or ``{"destination",
  "max_per_second", "limit"}``: starts the task, 202 with it (``status``
  ``running``, ``moved`` 0, ``total``); 409 while another one runs;
* ``GET /v2/queues/{dlq}/redrive/{id}``: the task's progress, ``status``
  ``done`` at the end.

The request rules are ``herald.common.edge.redrive``'s, the work the
storage workers' (``herald.storage.redrive``); these handlers route and shape.
"""

from __future__ import annotations

from herald.api.handlers.base import BaseHandler
from herald.common.edge import redrive, shapes


class RedriveCollectionHandler(BaseHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str) -> None:
        document = self.json_body() if self.has_body() else None
        args = redrive.redrive_request(document, queue_name, self.ctx.project_id)
        task = shapes.redrive_task(queue_name, await self.storage.queue_redrive(
            self.ctx, queue_name, **args))
        self.set_header("Location", task["href"])
        self.reply_json(task, status=202)


class RedriveHandler(BaseHandler):
    ALLOWED = ("GET",)

    async def get(self, queue_name: str, redrive_id: str) -> None:
        task = await self.storage.queue_redrive_get(self.ctx, queue_name, redrive_id)
        self.reply_json(shapes.redrive_task(queue_name, task))
