"""Test-firing a subscription: one test notification, sent now, outcome reported.

``fire`` writes an outbox row of kind ``test`` for the subscription, leased
to itself at once (so no dispatcher takes it), sends it once through the
same transports as every notification (``herald.storage.delivery``), and
records the attempt like any other (``OutboxController.record_attempt``:
the row's outcome, the delivery history and the subscription's health), then
returns the outcome. No retries: the caller wants to know what happens now.

The payload is ``{"Message_Type": "TestNotification", "queue_name",
"subscription_id", "sent_at"}``, so receivers can tell it from real
notifications. Runs on the calling RPC thread with an event loop of its own
for the attempt; it is an operator's action, bounded by ``[notification]
delivery_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
import types
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.common import errors, ids, timeutils
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import base, clock, outbox
from herald.storage.delivery import Deliverer, Outcome
from herald.storage.engine import Database
from herald.storage.schema import outbox as outbox_table
from herald.storage.schema import subscriptions

KIND_TEST = "test"


def fire(db: Database, conf: cfg.ConfigOpts, pusher: WSPushClient,
         gateway_alive: Callable[[str], bool | None], project: str, queue: str,
         subscription_id: str, request_id: str) -> dict[str, Any]:
    if not ids.is_valid_id(subscription_id):
        raise errors.SubscriptionDoesNotExist.of(subscription_id)
    now = clock.now()
    owner = f"test-fire-{uuid.uuid4().hex}"
    payload = {"Message_Type": "TestNotification", "queue_name": queue,
               "subscription_id": subscription_id, "sent_at": timeutils.isotime(now)}
    with db.write() as conn:
        sub = conn.execute(
            sa.select(subscriptions.c.id, subscriptions.c.subscriber, subscriptions.c.kind,
                      subscriptions.c.options, subscriptions.c.signing)
            .where(subscriptions.c.id == subscription_id,
                   subscriptions.c.project == project, subscriptions.c.queue == queue,
                   subscriptions.c.expires > now)
        ).one_or_none()
        if sub is None:
            raise errors.SubscriptionDoesNotExist.of(subscription_id)
        values = outbox.row_for(
            project=project, queue=queue, subscription=sub, kind=KIND_TEST,
            payload=json.dumps(payload), options=base.load_metadata(sub.options),
            request_id=request_id, now=now)
        # Leased to this call from the start: the dispatchers never see it.
        values.update(lease_owner=owner,
                      leased_until=now + conf.notification.delivery_timeout + 30)
        inserted = conn.execute(sa.insert(outbox_table).values(**values)
                                .returning(*outbox_table.c)).one()
    # Signed like every webhook delivery (``OutboxController.lease`` adds the
    # same attribute to the rows it leases).
    row = types.SimpleNamespace(**inserted._mapping, signing=sub.signing)
    started = time.monotonic()
    outcome = asyncio.run(_attempt(conf, pusher, gateway_alive, row))
    latency_ms = (time.monotonic() - started) * 1000.0
    outbox.OutboxController(db).record_attempt(
        row, owner, delivered=outcome.delivered, failed=not outcome.delivered,
        status=outcome.status, error=outcome.error, next_attempt=None, attempts=1,
        latency_ms=latency_ms)
    return {"delivered": outcome.delivered, "status": outcome.status, "error": outcome.error,
            "latency_ms": round(latency_ms, 3), "attempted_at": timeutils.isotime(now),
            "payload": payload}


async def _attempt(conf: cfg.ConfigOpts, pusher: WSPushClient,
                   gateway_alive: Callable[[str], bool | None], row: Any) -> Outcome:
    deliverer = Deliverer(conf, pusher, gateway_alive)
    try:
        outcome = await deliverer.attempt(row)
    finally:
        await deliverer.close()
    if outcome.gone:
        # A closed websocket connection: reported, but the subscription is
        # left to the dispatcher's usual clean-up.
        return Outcome(error=outcome.error)
    return outcome
