"""``POST /v2/queues/{queue_name}/share``: create a pre-signed URL (rest-v2.md §3).

Signs, with ``[signed_url] secret_key``, the queue's sub-resource paths, the
methods and the expiry the caller asks for; the reply carries everything a
client needs to send signed requests (verification: ``herald.api.auth``).
No storage call: the queue is not created and need not exist. Without a
configured key nothing is signed (400): there is no default key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from herald.api.handlers.base import BaseHandler
from herald.common import errors, signing
from herald.common.edge.bodies import require_object

KNOWN_KEYS = frozenset({"paths", "methods", "expires"})
VALID_PATHS = frozenset({"messages", "subscriptions", "claims"})
DEFAULT_LIFETIME = dt.timedelta(days=1)


def _expires(document: dict[str, Any]) -> dt.datetime:
    value = document.get("expires")
    now = dt.datetime.now(dt.UTC)
    if value is None:
        return now + DEFAULT_LIFETIME
    if not isinstance(value, str):
        raise errors.BadRequest("`expires` should be date format, for example "
                                "2016-01-01T00:00:00")
    try:
        moment = signing.parse_expires(value)
    except signing.InvalidExpires as exc:
        raise errors.BadRequest("`expires` should be date format, for example "
                                "2016-01-01T00:00:00") from exc
    # Compared at the signed precision (whole seconds).
    if moment.replace(microsecond=0) <= now:
        raise errors.BadRequest("`expires` is lower than the current time")
    return moment


class QueueShareHandler(BaseHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str) -> None:
        document = require_object(self.json_body())  # empty body: 400 as the spec says
        unknown = set(document) - KNOWN_KEYS
        if unknown:
            raise errors.BadRequest(f"Unknown keys: {unknown}")
        requested = document.get("paths") or ["messages"]
        if not isinstance(requested, list) or not all(isinstance(p, str) for p in requested):
            raise errors.BadRequest(f"Invalid paths: {requested}")
        invalid = set(requested) - VALID_PATHS
        if invalid:
            raise errors.BadRequest(f"Invalid paths: {invalid}")
        methods = document.get("methods") or ["GET"]
        if not isinstance(methods, list):
            raise errors.BadRequest("`methods` should be a list")
        if not all(isinstance(m, str) and m and "," not in m for m in methods):
            # Methods travel comma-joined in URL-Methods: a comma would split one.
            raise errors.BadRequest("`methods` should be a list of HTTP method names")
        expires = _expires(document)
        key = self.conf.signed_url.secret_key
        if not key:
            raise errors.BadRequest("Pre-signed URLs are not available: the operator has "
                                    "not configured [signed_url] secret_key.")
        paths = sorted({f"/v2/queues/{queue_name}/{path}" for path in requested})
        methods = sorted(set(methods))
        expires_text = signing.format_expires(expires)
        project = self.ctx.project_id
        self.reply_json({
            "project": project,
            "paths": paths,
            "methods": methods,
            "expires": expires_text,
            "signature": signing.signature(key, paths, methods, project, expires_text),
        })
