"""The notifier pipeline stage: one outbox row per message and subscriber.

Runs inside the post's transaction (``herald.storage.pipeline``). Recipients
are the (project, queue)'s unexpired subscriptions -- only the confirmed ones
when ``[notification] require_confirmation`` is on (websocket connection
subscriptions always count as confirmed, websocket.md §6). All rows of a
post go in with one INSERT, leased to this process's dispatcher when one
listens on the same database (``outbox_signal.DispatchSignal.lessee``: the
signal of the process's ``StorageWiring``, given at construction): the
poster hands them over once committed (``PostedBatch.handed``). A
subscription with a filter policy (``options.filter``,
``herald.common.filter_policy``) gets rows only for the messages whose body
matches it: a filtered-out message costs no row. Each stored policy is
compiled once per worker, not per message. The payload is notifications.md
§3's exact dict, serialized once here with ``json.dumps`` default
separators, so every subscriber gets the same bytes. Delivery is the
dispatchers' job; nothing here touches the network.
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
from herald.storage.pipeline import PostedBatch
from herald.storage.schema import subscriptions
from herald.storage.subscriptions import KIND_WEBSOCKET
from herald.storage.wiring import StorageWiring


def notification_payload(message: dict[str, Any], queue: str,
                         queue_metadata: dict[str, Any]) -> str:
    """notifications.md §3: ttl, body (+ delay on a queue with a default
    delay), Message_Type, queue_name; no id, href, age or checksum."""
    payload: dict[str, Any] = {"ttl": message["ttl"],
                               "body": serializer.encode(message["body"])}
    if queue_metadata.get("_default_message_delay"):
        payload["delay"] = message.get("delay", 0)
    payload["Message_Type"] = "Notification"
    payload["queue_name"] = queue
    return json.dumps(payload)


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
            if subs:
                batch_rows = self._rows(batch, subs, lessee)
                rows.extend(batch_rows)
                written.append((batch, len(batch_rows)))
                batch.outbox_rows += len(batch_rows)
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
