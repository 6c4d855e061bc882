"""Subscription controller: create, list, get, update, delete, confirm, purge
(rest-v2.md §6, semantics.md §10, notifications.md §6-7).

Expired subscriptions behave as deleted at once: every read filters on
``expires`` in SQL, and a create over an expired duplicate replaces it. A
confirmation message (SubscriptionConfirmation / UnsubscribeConfirmation) is
an outbox row written in the same transaction as the change that causes it
(``confirmations``), so it is delivered by the dispatchers like any
notification. Deleting a subscription deletes its pending outbox rows with it.

Every write to subscription rows bumps their queue's version as its last
statement (``subscription_versions``): the workers' caches of recipients
rely on it, so a new write here must bump too.

Validation of the request fields is the edge's job (``herald.common.
subscriptions``); this module enforces only what needs the stored rows
(uniqueness, existence). Must not deliver anything itself.

Tenancy: a subscription belongs to (project, queue). Get, update, delete,
confirm (the reference checks the project only; Herald the queue too) and
test-fire (``herald.storage.testfire``) look it up by (project, queue, id),
and every statement that changes it names all three: another project's or
queue's id is "does not exist" (or a no-op delete). Only the websocket
clean-up (``delete_connection``) goes by subscriber, a URI only storage
makes (``KIND_WEBSOCKET``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Row

from herald.common import errors, ids, timeutils, webhook_signing
from herald.common import subscriptions as rules
from herald.storage import base, clock, confirmations, outbox, subscription_versions
from herald.storage.engine import Database
from herald.storage.schema import outbox as outbox_table
from herald.storage.schema import subscriptions

LOG = logging.getLogger(__name__)

KIND_URI = "uri"
KIND_WEBSOCKET = "websocket"

# A create's statements, built once with their values bound at execution:
# building them per call (values coerced, cache keys computed) was most of
# a websocket subscription_create's CPU, and SQLite writes one at a time.
_SAME_SUBSCRIBER = (sa.select(subscriptions)
                    .where(subscriptions.c.project == sa.bindparam("b_project"),
                           subscriptions.c.queue == sa.bindparam("b_queue"),
                           subscriptions.c.subscriber == sa.bindparam("b_subscriber"))
                    .with_for_update())
_INSERT = subscriptions.insert()

_id_lock = threading.Lock()
_last_stamp = 0


def new_subscription_id() -> str:
    """32 hex digits that sort in creation order: microseconds, then randomness.

    Listing is "creation order (id ascending)" with the id as marker, so ids
    must grow with time; the random half keeps them unguessable and unique
    across workers."""
    global _last_stamp
    with _id_lock:
        stamp = max(time.time_ns() // 1000, _last_stamp + 1)
        _last_stamp = stamp
    return f"{stamp:016x}{os.urandom(8).hex()}"


def _subscription_object(row: Any, now: float, detail: bool) -> dict[str, Any]:
    """A Subscription; ``detail`` (the GET of one, never a listing) adds the
    ``delivery`` statistics and the webhook signing secret
    (``options.signing_secret``): a listing, which dashboards print, does not
    spread secrets, and its options round-trip through a PATCH unchanged
    (a PATCH without ``signing_secret`` keeps the secret)."""
    item: dict[str, Any] = {
        "id": row.id,
        "source": row.queue,
        "subscriber": row.subscriber,
        "ttl": int(row.ttl),
        "age": timeutils.age(row.created, now),
        "options": base.load_metadata(row.options),
        "confirmed": bool(row.confirmed),
    }
    secret = webhook_signing.current_secret(row.signing)
    if detail and secret is not None:
        item["options"][webhook_signing.OPTION] = secret
    if detail:
        item["delivery"] = {
            "attempts": int(row.delivery_attempts or 0),
            "delivered": int(row.deliveries or 0),
            "failed": int(row.delivery_failures or 0),
            "last_attempt": timeutils.isotime(row.last_attempt) if row.last_attempt else None,
            "last_status": row.last_status,
            "last_error": row.last_error,
            "last_success": timeutils.isotime(row.last_success) if row.last_success else None,
            # Health (Herald extension): failed attempts since the last success.
            "last_failure": timeutils.isotime(row.last_failure) if row.last_failure else None,
            "consecutive_failures": int(row.consecutive_failures or 0),
            "healthy": not row.consecutive_failures,
        }
    return item


def _live(now: float) -> sa.ColumnElement[bool]:
    return subscriptions.c.expires > now


def _addressed(project: str, queue: str, subscription_id: str) -> sa.ColumnElement[bool]:
    """The one subscription a by-id call names: by (project, queue, id), never
    by id alone, so another project's or queue's id is "not found"."""
    return sa.and_(subscriptions.c.id == subscription_id,
                   subscriptions.c.project == project, subscriptions.c.queue == queue)


def _live_row(conn: Connection, project: str, queue: str, subscription_id: str, now: float,
              lock: bool = False) -> Row[Any]:
    """The live subscription a by-id call names (locked for the transaction
    with ``lock``); ``SubscriptionDoesNotExist`` if there is none."""
    stmt = sa.select(subscriptions).where(_addressed(project, queue, subscription_id),
                                          _live(now))
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).one_or_none()
    if row is None:
        raise errors.SubscriptionDoesNotExist.of(subscription_id)
    return row


class SubscriptionController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self._db = db
        self._conf = conf

    # -- confirmation messages ------------------------------------------------

    def _confirmation_enabled(self) -> bool:
        return confirmations.enabled(self._conf)

    def _queue_confirmation(self, conn: Connection, row: dict[str, Any], subscribe: bool,
                            now: float, request_id: str) -> None:
        """Write the (un)subscribe confirmation of ``row`` to the outbox."""
        if row["kind"] == KIND_URI:
            confirmations.write(self._conf, conn, row, subscribe, now, request_id)

    # -- create ---------------------------------------------------------------

    def create(self, project: str, queue: str, subscriber: str, ttl: int | None,
               options: dict[str, Any] | None, kind: str, send_confirmation: bool,
               request_id: str) -> dict[str, Any]:
        """``{"subscription_id", "created": bool, "confirmed": bool,
        "signing_secret": str | None}``.

        An existing live subscription of the same subscriber is returned with
        ``created`` False (the edge answers 201 or 409); its ttl, options and
        secret are left alone, and its secret is the one returned. A new
        ``uri`` subscription signs with ``options.signing_secret`` (taken out
        of the stored options) or a generated secret. A confirmation is queued
        for a new subscription, or an unconfirmed existing one, when
        ``send_confirmation`` and enabled."""
        ttl = int(ttl or self._conf.limits.default_subscription_ttl)
        for attempt in range(2):
            try:
                return self._create(project, queue, subscriber, ttl, options or {}, kind,
                                    send_confirmation, request_id)
            except sa_exc.IntegrityError:
                # A concurrent create of the same subscriber won the unique
                # index; the second round finds its row.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _create(self, project: str, queue: str, subscriber: str, ttl: int,
                options: dict[str, Any], kind: str, send_confirmation: bool,
                request_id: str) -> dict[str, Any]:
        now = clock.now()
        with self._db.write() as conn:
            base.ensure_queue(conn, project, queue, None, now)
            existing = conn.execute(_SAME_SUBSCRIBER, {
                "b_project": project, "b_queue": queue, "b_subscriber": subscriber,
            }).mappings().one_or_none()
            if existing is not None and existing["expires"] > now:
                if send_confirmation and not existing["confirmed"]:
                    self._queue_confirmation(conn, dict(existing), True, now, request_id)
                return {"subscription_id": existing["id"], "created": False,
                        "confirmed": bool(existing["confirmed"]),
                        "signing_secret": webhook_signing.current_secret(existing["signing"])}
            if existing is not None:  # expired: as if deleted
                _delete_rows(conn, sa.and_(subscriptions.c.id == existing["id"]))
            options = dict(options)
            secret = options.pop(webhook_signing.OPTION, None)
            row = {
                "id": new_subscription_id(),
                "project": project,
                "queue": queue,
                "subscriber": subscriber,
                "kind": kind,
                "ttl": ttl,
                "options": json.dumps(options),
                "confirmed": False,
                "created": now,
                "expires": now + ttl,
                "delivery_attempts": 0,
                "deliveries": 0,
                "delivery_failures": 0,
                "signing": (webhook_signing.new_record(secret) if kind == KIND_URI else None),
            }
            conn.execute(_INSERT, row)
            if send_confirmation:
                self._queue_confirmation(conn, row, True, now, request_id)
            subscription_versions.bump(self._db, conn, [(project, queue)])
        if send_confirmation and self._confirmation_enabled():
            self._db.after_commit(lambda: self._db.wiring.outbox.set(project, queue))
        return {"subscription_id": row["id"], "created": True, "confirmed": False,
                "signing_secret": webhook_signing.current_secret(row["signing"])}

    # -- reads ----------------------------------------------------------------

    def list(self, project: str, queue: str, marker: str | None,
             limit: int) -> dict[str, Any]:
        now = clock.now()
        stmt = (sa.select(subscriptions)
                .where(subscriptions.c.project == project, subscriptions.c.queue == queue,
                       _live(now))
                .order_by(subscriptions.c.id)
                .limit(limit))
        if marker:
            stmt = stmt.where(subscriptions.c.id > marker)
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        return {"subscriptions": [_subscription_object(r, now, False) for r in rows],
                "marker": rows[-1].id if rows else None}

    def get(self, project: str, queue: str, subscription_id: str) -> dict[str, Any]:
        if not ids.is_valid_id(subscription_id):
            raise errors.SubscriptionDoesNotExist.of(subscription_id)
        now = clock.now()
        with self._db.read() as conn:
            row = _live_row(conn, project, queue, subscription_id, now)
            item = _subscription_object(row, now, True)
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(outbox_table)
                .where(outbox_table.c.subscription_id == subscription_id,
                       outbox_table.c.project == project, outbox_table.c.queue == queue,
                       outbox_table.c.state == outbox.STATE_PENDING)
            ).scalar_one()
        item["delivery"]["pending"] = int(pending)
        return item

    # -- changes --------------------------------------------------------------

    def update(self, project: str, queue: str, subscription_id: str,
               changes: dict[str, Any]) -> None:
        if not ids.is_valid_id(subscription_id):
            raise errors.SubscriptionDoesNotExist.of(subscription_id)
        now = clock.now()
        values: dict[str, Any] = {}
        if "subscriber" in changes:
            values["subscriber"] = changes["subscriber"]
        rotate = False
        if "options" in changes:
            options = dict(changes["options"] or {})
            # Present (even null: "generate one"), it rotates the secret;
            # absent, the secret stays: signing is never switched off.
            rotate = webhook_signing.OPTION in options
            new_secret = options.pop(webhook_signing.OPTION, None)
            values["options"] = json.dumps(options)
        if "ttl" in changes:
            ttl = int(changes["ttl"] or self._conf.limits.default_subscription_ttl)
            values["ttl"] = ttl
            values["expires"] = now + ttl
        with self._db.write() as conn:
            row = _live_row(conn, project, queue, subscription_id, now, lock=True)
            if rotate:
                values["signing"] = webhook_signing.rotated_record(
                    row.signing, new_secret, now,
                    self._conf.notification.signing_secret_overlap)
            if "subscriber" in values:
                clash = conn.execute(
                    sa.select(subscriptions.c.id, subscriptions.c.expires)
                    .where(subscriptions.c.project == project,
                           subscriptions.c.queue == queue,
                           subscriptions.c.subscriber == values["subscriber"],
                           subscriptions.c.id != subscription_id)
                ).one_or_none()
                if clash is not None and clash.expires > now:
                    raise errors.Conflict(
                        "Such subscription already exists.Subscriptions are unique by "
                        "project + queue + subscriber URI.")
                if clash is not None:
                    _delete_rows(conn, subscriptions.c.id == clash.id)
            if values:
                conn.execute(sa.update(subscriptions)
                             .where(_addressed(project, queue, subscription_id))
                             .values(**values))
                subscription_versions.bump(self._db, conn, [(project, queue)])

    def delete(self, project: str, queue: str, subscription_id: str) -> None:
        if not ids.is_valid_id(subscription_id):
            return
        with self._db.write() as conn:
            _delete_rows(conn, _addressed(project, queue, subscription_id), self._db)

    def confirm(self, project: str, queue: str, subscription_id: str, confirmed: bool,
                request_id: str) -> None:
        """Set ``confirmed``.

        Looked up by (project, queue, id) like every other by-id call. The
        reference checks the project only; the confirmation URL names the
        queue, so a confirmation sent by Herald always matches."""
        if not ids.is_valid_id(subscription_id):
            raise errors.SubscriptionDoesNotExist.of(subscription_id)
        now = clock.now()
        with self._db.write() as conn:
            row = _live_row(conn, project, queue, subscription_id, now, lock=True)
            conn.execute(sa.update(subscriptions)
                         .where(_addressed(project, queue, subscription_id))
                         .values(confirmed=bool(confirmed)))
            if not confirmed:
                self._queue_confirmation(conn, dict(row._mapping), False, now, request_id)
            subscription_versions.bump(self._db, conn, [(project, queue)])
        if not confirmed and self._confirmation_enabled():
            self._db.wiring.outbox.set(project, row.queue)

    def purge(self, project: str, queue: str) -> None:
        with self._db.write() as conn:
            _delete_rows(conn, sa.and_(subscriptions.c.project == project,
                                       subscriptions.c.queue == queue), self._db)

    def delete_connection(self, gateway_id: str, connection_id: str | None) -> int:
        """Delete the subscriptions of one websocket connection (it closed), or
        of every connection of a gateway (it died: ``connection_id`` None)."""
        uri = rules.ws_subscriber_uri(gateway_id, connection_id or "")
        column = subscriptions.c.subscriber
        match = column == uri if connection_id else column.startswith(uri, autoescape=True)
        with self._db.write() as conn:
            return len(_delete_rows(
                conn, sa.and_(subscriptions.c.kind == KIND_WEBSOCKET, match), self._db))

    def collect_garbage(self, project: str, queue: str) -> int:
        """Delete the queue's expired subscriptions (reads already hide them)."""
        with self._db.write() as conn:
            return len(_delete_rows(conn, sa.and_(subscriptions.c.project == project,
                                                  subscriptions.c.queue == queue,
                                                  subscriptions.c.expires <= clock.now()),
                                    self._db))

    def expired_queues(self) -> list[tuple[str, str]]:
        with self._db.read() as conn:
            return [(r.project, r.queue) for r in conn.execute(
                sa.select(subscriptions.c.project, subscriptions.c.queue)
                .where(subscriptions.c.expires <= clock.now()).distinct())]


def _delete_rows(conn: Connection, where: sa.ColumnElement[bool],
                 bump: Database | None = None) -> list[tuple[str, str]]:
    """Delete the matching subscriptions and their pending outbox rows; the
    (project, queue) of each. Their versions are bumped, as the write's
    last statement, when it is ``bump``'s (else the caller bumps later)."""
    doomed = conn.execute(sa.select(subscriptions.c.id, subscriptions.c.project,
                                    subscriptions.c.queue).where(where)).all()
    if not doomed:
        return []
    ids_ = [r.id for r in doomed]
    conn.execute(sa.delete(outbox_table).where(outbox_table.c.subscription_id.in_(ids_),
                                               outbox_table.c.state == outbox.STATE_PENDING))
    conn.execute(sa.delete(subscriptions).where(subscriptions.c.id.in_(ids_)))
    keys = [(r.project, r.queue) for r in doomed]
    if bump is not None:
        subscription_versions.bump(bump, conn, keys)
    return keys


