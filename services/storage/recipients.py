"""Who a post notifies: the posted queues' recipients, read or remembered.

The notifier stage (``herald.storage.notifier``) asks ``read`` for the
recipients of the queues a statement set posts to. Reading every
subscription of a broadcast queue (1,000 or 10,000 websocket connections,
issue 27) and parsing their URIs on each post was the storage worker's main
cost per post, so each worker remembers what it read, per database and
(project, queue): a ``Recipients`` entry, kept with the queue's
subscription version (``herald.storage.subscription_versions``, bumped by
every change to its subscriptions in the change's transaction).

One statement per read, in the post's transaction: for each posted queue,
its version, and its subscriptions only when the version is not the one
the entry was read with (the cached number is a parameter; the version is
a one-row table tested before the join, so neither PostgreSQL nor SQLite
scans any subscription on a hit). Version and rows come from one snapshot, so an
entry never holds rows newer or older than its number. A hit costs one
small indexed read instead of N rows. An entry is used only while

- its version is the queue's (no subscription was created, changed,
  confirmed or deleted since: anything that could change who is notified);
- none of its subscriptions has expired by the post's ``now`` (it keeps the
  earliest ``expires``), and ``now`` is not before the read (the clock may
  step back: a subscription it left out as expired could be live again);
- it is younger than ``MAX_AGE_SECONDS`` by the posts' clock: a bound on
  any write that failed to bump (a worker of a release before versions
  during a rolling upgrade, a database restored under running workers).

What an entry holds is what makes a post cheap: durable (webhook, mail)
subscriptions as the rows the outbox rows are made from; websocket
connection subscriptions parsed once and grouped per gateway (and per
filter policy, compiled once), each group's connection ids one list that
every post's ``Broadcast`` shares (never mutated): the gateway merges
consecutive broadcasts whose lists compare equal. The grouping keeps the
subscriptions' id order, so the notifier builds exactly the broadcasts a
fresh read would.

Thread-safety, as ``post_caches``: one ``RecipientCache`` per process
(``StorageWiring.recipients``), shared by its executor threads; entries are
immutable, and every operation is a single dict operation or a sequence of
them whose interleaving only loses entries (a miss costs one read). No
locks: they would sit on every post's path. Bounded: past
``RECIPIENTS_MAX`` queues or ``SUBSCRIPTIONS_MAX`` remembered
subscriptions a database's memory starts over.

Must not write, decide what a recipient gets (the notifier does), or be
told about changes from elsewhere: the version is the only invalidation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from herald.common import filter_policy
from herald.common import subscriptions as rules
from herald.storage.schema import subscription_versions, subscriptions
from herald.storage.subscriptions import KIND_WEBSOCKET

Key = tuple[str, str]

#: Queues a worker remembers per database; past this many it starts over.
RECIPIENTS_MAX = 1024
#: Subscriptions a worker remembers per database, all queues together
#: (about 100 bytes each); past this many it starts over.
SUBSCRIPTIONS_MAX = 1_000_000
#: Seconds, by the posts' clock, an entry is used at most (see the module
#: docstring): then one post reads the queue's subscriptions again.
MAX_AGE_SECONDS = 60.0
#: The cached version sent for a queue without a usable entry: versions
#: start at 0, so its subscriptions are read.
_NO_ENTRY = -1


@dataclasses.dataclass(frozen=True)
class WsGroup:
    """Websocket subscriptions of one gateway and filter policy."""

    gateway_id: str
    #: None: notified of every message.
    policy: filter_policy.FilterPolicy | None
    #: Connection ids, in subscription id order; shared by every broadcast
    #: made from this group, so never mutated.
    connections: list[str]
    #: Each connection's position among the queue's subscriptions: merges
    #: groups whose policies select the same messages in a post back into
    #: subscription order.
    positions: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Recipients:
    """One queue's recipients as read with its subscription ``version``."""

    version: int
    #: The post's ``now`` when read, and the earliest ``expires`` among the
    #: subscriptions read (infinity when none).
    read_at: float
    live_until: float
    #: Webhook and mail subscriptions (rows: id, subscriber, kind, options,
    #: signing), in id order.
    durable: tuple[Row[Any], ...]
    #: Websocket connection subscriptions by gateway and policy, in the
    #: order of their first subscription.
    websocket: tuple[WsGroup, ...]
    #: Subscriptions held (the memory's bound).
    size: int

    def usable(self, now: float) -> bool:
        return self.read_at <= now < min(self.live_until, self.read_at + MAX_AGE_SECONDS)

    def __bool__(self) -> bool:
        return bool(self.durable or self.websocket)


def of_rows(version: int, now: float, rows: Sequence[Row[Any]]) -> Recipients:
    """The entry of one queue's recipient rows (id order), read at ``now``."""
    durable: list[Row[Any]] = []
    groups: dict[tuple[str, str | None], tuple[list[str], list[int]]] = {}
    policies: dict[tuple[str, str | None], filter_policy.FilterPolicy | None] = {}
    live_until = math.inf
    for position, row in enumerate(rows):
        live_until = min(live_until, row.expires)
        if row.kind != KIND_WEBSOCKET:
            durable.append(row)
            continue
        target = rules.parse_ws_subscriber(row.subscriber)
        if target is None:
            continue
        policy = filter_policy.of_options(row.options)
        # Same gateway and same stored options: same messages, one group.
        key = (target[0], row.options if policy is not None else None)
        connections, positions = groups.setdefault(key, ([], []))
        connections.append(target[1])
        positions.append(position)
        policies[key] = policy
    websocket = tuple(WsGroup(gateway_id=key[0], policy=policies[key], connections=conns,
                              positions=tuple(positions))
                      for key, (conns, positions) in groups.items())
    return Recipients(version=version, read_at=now, live_until=live_until,
                      durable=tuple(durable), websocket=websocket, size=len(rows))


class _Known:
    """One database's entries: (project, queue, confirmed only?) -> Recipients."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, bool], Recipients] = {}
        # Approximate under concurrency (a bound, not a count to trust).
        self._held = 0

    def get(self, key: tuple[str, str, bool]) -> Recipients | None:
        return self._entries.get(key)

    def remember(self, key: tuple[str, str, bool], entry: Recipients) -> None:
        old = self._entries.get(key)
        held = self._held + entry.size - (old.size if old is not None else 0)
        if (old is None and len(self._entries) >= RECIPIENTS_MAX) or held > SUBSCRIPTIONS_MAX:
            self._entries.clear()
            held = entry.size
        self._held = held
        self._entries[key] = entry


class RecipientCache:
    """A process's remembered recipients, per database (engine)."""

    def __init__(self) -> None:
        # Weak: a pool's engine that is replaced takes its entries along,
        # and a new engine never finds an old one's.
        self._databases: weakref.WeakKeyDictionary[Any, _Known] = weakref.WeakKeyDictionary()

    def of(self, engine: Any) -> _Known:
        known = self._databases.get(engine)
        if known is None:
            known = self._databases.setdefault(engine, _Known())
        return known


def _version(slot: int) -> sa.ColumnElement[Any]:
    """The slot's queue's subscription version: the sum of its shards' (0
    without a row)."""
    found = (sa.select(sa.func.sum(subscription_versions.c.version))
             .where(subscription_versions.c.project == sa.bindparam(f"b_project_{slot}"),
                    subscription_versions.c.queue == sa.bindparam(f"b_queue_{slot}"))
             .scalar_subquery())
    return sa.func.coalesce(found, 0)


@functools.lru_cache(maxsize=64)
def statement(count: int, confirmed_only: bool) -> sa.CompoundSelect[Any]:
    """For ``count`` queues (slots 0..count-1, bound as ``b_project_<slot>``,
    ``b_queue_<slot>``, ``b_cached_<slot>``, and ``b_now``): per slot one row
    with its version (``id`` null), and its recipient subscriptions when
    that version is not ``b_cached_<slot>``; ordered by slot and id."""
    parts: list[sa.Select[Any]] = []
    for slot in range(count):
        number = sa.literal_column(str(slot), sa.Integer)
        # The version as a one-row table joined to the subscriptions, its
        # test in WHERE: both databases test it once, before the join
        # (PostgreSQL: a one-time filter; SQLite: the outer loop's), where
        # a test of the subquery next to the rows' own made SQLite test it
        # per row.
        current = sa.select(_version(slot).label("version")).subquery(f"v{slot}")
        rows = (sa.select(number.label("slot"), sa.null().label("version"),
                          subscriptions.c.id, subscriptions.c.subscriber,
                          subscriptions.c.kind, subscriptions.c.options,
                          subscriptions.c.signing, subscriptions.c.expires)
                .select_from(current.join(subscriptions, sa.and_(
                    subscriptions.c.project == sa.bindparam(f"b_project_{slot}"),
                    subscriptions.c.queue == sa.bindparam(f"b_queue_{slot}"))))
                .where(current.c.version != sa.bindparam(f"b_cached_{slot}"),
                       subscriptions.c.expires > sa.bindparam("b_now")))
        if confirmed_only:
            rows = rows.where(sa.or_(subscriptions.c.confirmed.is_(True),
                                     subscriptions.c.kind == KIND_WEBSOCKET))
        parts.append(rows)
        parts.append(sa.select(number.label("slot"), _version(slot).label("version"),
                               *(sa.null().label(name) for name in (
                                   "id", "subscriber", "kind", "options", "signing",
                                   "expires"))))
    return sa.union_all(*parts).order_by(sa.literal_column("slot"), sa.literal_column("id"))


def read(conn: Connection, known: _Known, keys: Sequence[Key], now: float,
         confirmed_only: bool) -> dict[Key, Recipients]:
    """The recipients of each (project, queue) of ``keys`` at ``now``, in the
    transaction of ``conn``: remembered ones whose version is still the
    queue's, the others read and remembered. One statement."""
    wanted = sorted(set(keys))
    entries = [known.get((project, queue, confirmed_only)) for project, queue in wanted]
    cached = [entry.version if entry is not None and entry.usable(now) else _NO_ENTRY
              for entry in entries]
    params: dict[str, Any] = {"b_now": now}
    for slot, (project, queue) in enumerate(wanted):
        params[f"b_project_{slot}"] = project
        params[f"b_queue_{slot}"] = queue
        params[f"b_cached_{slot}"] = cached[slot]
    versions: dict[int, int] = {}
    rows: dict[int, list[Row[Any]]] = {}
    for row in conn.execute(statement(len(wanted), confirmed_only), params):
        if row.id is None:
            versions[row.slot] = int(row.version)
        else:
            rows.setdefault(row.slot, []).append(row)
    found: dict[Key, Recipients] = {}
    for slot, (project, queue) in enumerate(wanted):
        entry = entries[slot]
        if entry is None or versions[slot] != cached[slot]:
            entry = of_rows(versions[slot], now, rows.get(slot, []))
            known.remember((project, queue, confirmed_only), entry)
        found[(project, queue)] = entry
    return found
