"""``/v2/ping`` (storage reachability, no body) and ``/v2/health`` (admin report).

Ping must answer 204/503 and never an error body: the client only looks at
the status. Health is served only in admin mode and needs the admin role.
"""

from __future__ import annotations

import logging

from herald.api.handlers.base import BaseHandler
from herald.common import errors

LOG = logging.getLogger(__name__)


class PingHandler(BaseHandler):
    ALLOWED = ("GET", "HEAD")

    async def get(self) -> None:
        try:
            reachable = await self.storage.ping(self.ctx)
        except errors.HeraldError as exc:
            LOG.warning("ping: storage unreachable: %s", exc.description)
            reachable = False
        self.reply_empty(204 if reachable else 503)

    def head(self) -> None:
        self.reply_empty(204)


class HealthHandler(BaseHandler):
    ALLOWED = ("GET",)
    ADMIN_MODE_ONLY = True
    ADMIN_ROLE = True

    async def get(self) -> None:
        try:
            report = await self.storage.health(self.ctx)
        except errors.HeraldError as exc:
            LOG.warning("health report failed: %s", exc.description)
            raise errors.ServiceUnavailable(
                "Health status could not be read. Please try again in a few seconds.") from exc
        self.reply_json(report)
