"""The notifier pipeline stage: who gets notified of a post, and how.

Runs inside the post's transaction (``herald.storage.pipeline``). Recipients
are the (project, queue)'s unexpired subscriptions -- only the confirmed ones
when ``[notification] require_confirmation`` is on (websocket connection
subscriptions always count as confirmed, websocket.md §6). A subscription
with a filter policy (``options.filter``, ``herald.common.filter_policy``)
is notified only of the messages whose body matches it: a filtered-out
message costs nothing. Each stored policy is compiled once per worker, not
per message.

Webhook and mail subscribers get one durable outbox row per message and
subscriber (at-least-once). All rows of a post go in with one INSERT,
leased to this process's dispatcher when one listens on the same database
(``outbox_signal.DispatchSignal.lessee``: the signal of the process's
``StorageWiring``, given at construction): the poster hands them over once
committed (``PostedBatch.handed``). The payload is notifications.md §3's
exact dict, serialized once here with ``json.dumps`` default separators, so
every subscriber gets the same bytes.

Websocket connection subscribers get no rows: their subscription lives as
long as their connection, and a post's notifications are pushed to them by
gateway -- one ``broadcasts.Broadcast`` per gateway holding subscribed
connections (per gateway and set of matching messages, with filters),
carrying the payloads once (``PostedBatch.broadcasts``, sent by the poster
once committed). Delivery is the dispatchers' and the broadcast sender's
job; nothing here touches the network.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Connection

from herald.common import filter_policy
from herald.common import subscriptions as rules
from herald.common.rpc import serializer
from herald.storage import base, outbox
from herald.storage.broadcasts import Broadcast
from herald.storage.pipeline import PostedBatch
from herald.storage.schema import subscriptions
from herald.storage.subscriptions import KIND_WEBSOCKET
from herald.storage.wiring import StorageWiring


def notification(message: dict[str, Any], queue: str,
                 queue_metadata: dict[str, Any]) -> dict[str, Any]:
    """notifications.md §3: ttl, body (+ delay on a queue with a default
    delay), Message_Type, queue_name; no id, href, age or checksum. The body
    as posted (not yet encoded for the wire)."""
    payload: dict[str, Any] = {"ttl": message["ttl"], "body": message["body"]}
    if queue_metadata.get("_default_message_delay"):
        payload["delay"] = message.get("delay", 0)
    payload["Message_Type"] = "Notification"
    payload["queue_name"] = queue
    return payload


def notification_payload(message: dict[str, Any], queue: str,
                         queue_metadata: dict[str, Any]) -> str:
    """``notification`` as an outbox row's payload (JSON, body encoded)."""
    return json.dumps(serializer.encode(notification(message, queue, queue_metadata)))


@functools.cache
def _recipients_statement(one_key: bool, confirmed_only: bool) -> sa.Select[Any]:
    """The subscriptions of the posted queues that get notifications, built
    once (``base.one_of_params`` and ``b_now`` bound at execution)."""
    stmt = (sa.select(subscriptions.c.project, subscriptions.c.queue, subscriptions.c.id,
                      subscriptions.c.subscriber, subscriptions.c.kind, subscriptions.c.options,
                      subscriptions.c.signing)
            .where(base.bound_one_of(subscriptions.c.project, subscriptions.c.queue, one_key),
                   subscriptions.c.expires > sa.bindparam("b_now"))
            .order_by(subscriptions.c.id))
    if confirmed_only:
        stmt = stmt.where(sa.or_(subscriptions.c.confirmed.is_(True),
                                 subscriptions.c.kind == KIND_WEBSOCKET))
    return stmt


class NotifierStage:
    def __init__(self, conf: cfg.ConfigOpts, wiring: StorageWiring) -> None:
        self._conf = conf
        self._signal = wiring.outbox

    def __call__(self, conn: Connection, batch: PostedBatch) -> None:
        self.run_many(conn, [batch])

    def nothing_to_write_sql(self) -> str:
        """No subscription of the posted queues exists (``pipeline``'s
        guard). Any row counts, expired or unconfirmed: restating who gets
        notified would be a second copy of ``_recipients_statement`` to keep
        true; a queue with only those runs this stage, which decides."""
        return ("NOT EXISTS (SELECT 1 FROM subscriptions JOIN assumed"
                " ON subscriptions.project = assumed.project"
                " AND subscriptions.queue = assumed.name)")

    def run_many(self, conn: Connection, batches: list[PostedBatch]) -> None:
        """The batches of one statement set (a coalesced batch's posts to
        several queues): one subscriber read and one INSERT for all."""
        if not batches:
            return
        one_key, params = base.one_of_params((batch.project, batch.queue) for batch in batches)
        params["b_now"] = min(batch.now for batch in batches)
        statement = _recipients_statement(one_key,
                                          self._conf.notification.require_confirmation)
        recipients: dict[tuple[str, str], list[Any]] = {}
        for sub in conn.execute(statement, params):
            recipients.setdefault((sub.project, sub.queue), []).append(sub)
        if not recipients:
            return
        lessee = self._signal.lessee(conn.engine)
        rows: list[dict[str, Any]] = []
        written: list[tuple[PostedBatch, int]] = []
        for batch in batches:
            subs = recipients.get((batch.project, batch.queue))
            if not subs:
                continue
            durable = [sub for sub in subs if sub.kind != KIND_WEBSOCKET]
            if len(durable) < len(subs):
                batch.broadcasts.extend(self._broadcasts(batch, [
                    sub for sub in subs if sub.kind == KIND_WEBSOCKET]))
            if durable:
                batch_rows = self._rows(batch, durable, lessee)
                rows.extend(batch_rows)
                written.append((batch, len(batch_rows)))
                batch.outbox_rows += len(batch_rows)
        if not rows:
            return
        if lessee is None:
            outbox.insert_rows(conn, rows)
            return
        leased = outbox.insert_leased_rows(conn, rows)
        signing = {sub.id: sub.signing for subs in recipients.values() for sub in subs}
        for row in leased:  # as a lease statement would return it
            row.signing = signing[row.subscription_id]
        start = 0
        for batch, count in written:
            batch.handed.extend(leased[start:start + count])
            start += count

    def _broadcasts(self, batch: PostedBatch, recipients: list[Any]) -> list[Broadcast]:
        """One ``Broadcast`` per gateway holding subscribed connections (and
        per set of matching messages, where filter policies differ), in the
        order of their first subscription; a connection subscribed twice to
        the queue gets each notification once per subscription, as a webhook
        subscribed twice does."""
        groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
        everything = tuple(range(len(batch.messages)))
        for sub in recipients:
            target = rules.parse_ws_subscriber(sub.subscriber)
            if target is None:
                continue
            policy = filter_policy.of_options(sub.options)
            wanted = everything if policy is None else tuple(
                i for i, m in enumerate(batch.messages) if policy.matches(m["body"]))
            if wanted:
                groups.setdefault((target[0], wanted), []).append(target[1])
        payloads = [notification(m, batch.queue, batch.metadata) for m in batch.messages]
        broadcasts = []
        for (gateway_id, wanted), connections in groups.items():
            first = batch.messages[wanted[0]]
            broadcasts.append(Broadcast(
                gateway_id=gateway_id, project=batch.project, queue=batch.queue,
                connections=connections, payloads=[payloads[i] for i in wanted],
                request_id=first.get("request_id") or batch.request_id,
                traceparent=first.get("traceparent") or batch.traceparent))
        return broadcasts

    def _rows(self, batch: PostedBatch, recipients: list[Any],
              lessee: str | None) -> list[dict[str, Any]]:
        payloads = [(m["id"], m.get("request_id") or batch.request_id,
                     notification_payload(m, batch.queue, batch.metadata),
                     m.get("traceparent") or batch.traceparent, m["body"])
                    for m in batch.messages]
        rows = []
        for sub in recipients:
            policy = filter_policy.of_options(sub.options)
            wanted = (payloads if policy is None
                      else [p for p in payloads if policy.matches(p[4])])
            if not wanted:
                continue
            options = base.load_metadata(sub.options)
            # The policy is resolved now, with the queue metadata at hand, so
            # a delivery needs nothing but its row.
            options["_retry_policy"] = rules.effective_policy(options, batch.metadata)
            for message_id, request_id, payload, traceparent, _ in wanted:
                rows.append(outbox.row_for(
                    project=batch.project, queue=batch.queue, subscription=sub,
                    kind=outbox.KIND_NOTIFICATION, payload=payload, options=options,
                    request_id=request_id, now=batch.now, message_id=message_id,
                    lessee=lessee, lease_seconds=self._conf.notification.lease_seconds,
                    traceparent=traceparent))
        return rows
