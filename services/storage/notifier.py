"""The notifier pipeline stage: who gets notified of a post, and how.

Runs inside the post's transaction (``herald.storage.pipeline``). Recipients
are the (project, queue)'s unexpired subscriptions -- only the confirmed ones
when ``[notification] require_confirmation`` is on (websocket connection
subscriptions always count as confirmed, websocket.md §6). A subscription
with a filter policy (``options.filter``, ``herald.common.filter_policy``)
is notified only of the messages whose body matches it: a filtered-out
message costs nothing. Each stored policy is compiled once per worker, not
per message. Who the recipients are comes from ``herald.storage.recipients``,
which remembers them per worker while the queue's subscription version
says they did not change: a post to a broadcast queue reads one small row,
not its thousands of subscriptions.

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

import json
from typing import Any

from oslo_config import cfg
from sqlalchemy.engine import Connection

from herald.common import filter_policy
from herald.common import subscriptions as rules
from herald.common.rpc import serializer
from herald.storage import base, outbox, recipients
from herald.storage.broadcasts import Broadcast
from herald.storage.pipeline import PostedBatch
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


class NotifierStage:
    def __init__(self, conf: cfg.ConfigOpts, wiring: StorageWiring) -> None:
        self._conf = conf
        self._signal = wiring.outbox
        self._recipients = wiring.recipients

    def __call__(self, conn: Connection, batch: PostedBatch) -> None:
        self.run_many(conn, [batch])

    def nothing_to_write_sql(self) -> str:
        """No subscription of the posted queues exists (``pipeline``'s
        guard). Any row counts, expired or unconfirmed: restating who gets
        notified would be a second copy of the recipient read to keep
        true (``recipients.statement``); a queue with only those runs this
        stage, which decides."""
        return ("NOT EXISTS (SELECT 1 FROM subscriptions JOIN assumed"
                " ON subscriptions.project = assumed.project"
                " AND subscriptions.queue = assumed.name)")

    def run_many(self, conn: Connection, batches: list[PostedBatch]) -> None:
        """The batches of one statement set (a coalesced batch's posts to
        several queues): one recipient read (``recipients.read``: most often
        just the queues' subscription versions) and one INSERT for all."""
        if not batches:
            return
        found = recipients.read(conn, self._recipients.of(conn.engine),
                                [(batch.project, batch.queue) for batch in batches],
                                min(batch.now for batch in batches),
                                self._conf.notification.require_confirmation)
        if not any(found.values()):
            return
        lessee = self._signal.lessee(conn.engine)
        rows: list[dict[str, Any]] = []
        written: list[tuple[PostedBatch, int]] = []
        for batch in batches:
            entry = found[(batch.project, batch.queue)]
            if entry.websocket:
                batch.broadcasts.extend(self._broadcasts(batch, entry.websocket))
            if entry.durable:
                batch_rows = self._rows(batch, entry.durable, lessee)
                rows.extend(batch_rows)
                written.append((batch, len(batch_rows)))
                batch.outbox_rows += len(batch_rows)
        if not rows:
            return
        if lessee is None:
            outbox.insert_rows(conn, rows)
            return
        leased = outbox.insert_leased_rows(conn, rows)
        signing = {sub.id: sub.signing for entry in found.values() for sub in entry.durable}
        for row in leased:  # as a lease statement would return it
            row.signing = signing[row.subscription_id]
        start = 0
        for batch, count in written:
            batch.handed.extend(leased[start:start + count])
            start += count

    def _broadcasts(self, batch: PostedBatch,
                    groups: tuple[recipients.WsGroup, ...]) -> list[Broadcast]:
        """One ``Broadcast`` per gateway holding subscribed connections (and
        per set of matching messages, where filter policies differ), in the
        order of their first subscription; a connection subscribed twice to
        the queue gets each notification once per subscription, as a webhook
        subscribed twice does. Unfiltered (the usual case), a gateway's
        broadcast carries its group's own connection list."""
        everything = tuple(range(len(batch.messages)))
        wanted_by: dict[tuple[str, tuple[int, ...]], list[recipients.WsGroup]] = {}
        for group in groups:
            policy = group.policy
            wanted = everything if policy is None else tuple(
                i for i, m in enumerate(batch.messages) if policy.matches(m["body"]))
            if wanted:
                wanted_by.setdefault((group.gateway_id, wanted), []).append(group)
        payloads = [notification(m, batch.queue, batch.metadata) for m in batch.messages]
        broadcasts = []
        for (gateway_id, wanted), parts in wanted_by.items():
            if len(parts) == 1:
                connections = parts[0].connections
            else:  # policies that select the same messages: subscription order
                connections = [connection for _, connection in sorted(
                    (position, connection) for part in parts
                    for position, connection in zip(part.positions, part.connections,
                                                    strict=True))]
            first = batch.messages[wanted[0]]
            broadcasts.append(Broadcast(
                gateway_id=gateway_id, project=batch.project, queue=batch.queue,
                connections=connections, payloads=[payloads[i] for i in wanted],
                request_id=first.get("request_id") or batch.request_id,
                traceparent=first.get("traceparent") or batch.traceparent))
        return broadcasts

    def _rows(self, batch: PostedBatch, durable: tuple[Any, ...],
              lessee: str | None) -> list[dict[str, Any]]:
        payloads = [(m["id"], m.get("request_id") or batch.request_id,
                     notification_payload(m, batch.queue, batch.metadata),
                     m.get("traceparent") or batch.traceparent, m["body"])
                    for m in batch.messages]
        rows = []
        for sub in durable:
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
