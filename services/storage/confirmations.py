"""Subscription confirmation messages (notifications.md §6-7), as outbox rows.

With ``[notification] require_confirmation`` on and a ``[signed_url]
secret_key`` set, a new (or still unconfirmed) webhook subscription gets a
SubscriptionConfirmation message, and an unconfirmed one an
UnsubscribeConfirmation: an outbox row written in the transaction of the
change that causes it (``herald.storage.subscriptions``), delivered by the
dispatchers like any notification. It carries a URL signed for the PUT that
confirms (``herald.common.signing``). Must not change subscriptions or
deliver anything.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Connection

from herald.common import signing, timeutils
from herald.common import subscriptions as rules
from herald.storage import base, outbox


def enabled(conf: cfg.ConfigOpts) -> bool:
    return bool(conf.notification.require_confirmation and conf.signed_url.secret_key)


def write(conf: cfg.ConfigOpts, conn: Connection, row: dict[str, Any], subscribe: bool,
          now: float, request_id: str) -> None:
    """Write the (un)subscribe confirmation of webhook subscription ``row``
    to the outbox, in ``conn``'s transaction (nothing when not ``enabled``)."""
    if not enabled(conf):
        return
    if rules.scheme(row["subscriber"]) == "mailto":
        # Mail confirmations need [notification] external_confirmation_url
        # (a page that issues the PUT); not offered yet: nothing is sent.
        return
    queue, project, sid = row["queue"], row["project"], row["id"]
    path = f"/v2/queues/{queue}/subscriptions/{sid}/confirm"
    lifetime = row["ttl"] if subscribe else conf.limits.default_subscription_ttl
    expires = timeutils.from_epoch(now) + dt.timedelta(seconds=int(lifetime))
    expires_text = signing.format_expires(expires)
    payload: dict[str, Any] = {
        "Message_Type": ("SubscriptionConfirmation" if subscribe
                         else "UnsubscribeConfirmation"),
        "Message": (f"You have chosen to subscribe to the queue: {queue}" if subscribe
                    else f"You have unsubscribed successfully to the queue: {queue}, "
                    "you can resubscribe it by using confirmed=True."),
        "URL-Signature": signing.signature(conf.signed_url.secret_key, [path],
                                           ["PUT"], project, expires_text),
        "URL-Methods": "PUT",
        "URL-Paths": path,
        "X-Project-ID": project,
        "URL-Expires": expires_text,
        "SubscribeBody": {"confirmed": True},
        "UnsubscribeBody": {"confirmed": False},
        "queue_name": queue,
    }
    rest = conf.notification.public_endpoint
    if rest:
        payload["WSGISubscribeURL"] = rest.rstrip("/") + path
    websocket = conf.notification.websocket_public_endpoint
    if websocket:
        payload["WebSocketSubscribeURL"] = websocket.rstrip("/") + path
    outbox.insert_rows(conn, [outbox.row_for(
        project=project, queue=queue, subscription=row, kind=outbox.KIND_CONFIRMATION,
        payload=json.dumps(payload), options=base.load_metadata(row["options"]),
        request_id=request_id, now=now)])
