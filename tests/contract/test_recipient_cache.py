"""Contract: a worker's remembered recipients are exactly the ones a read finds.

Each storage worker remembers the recipients of the queues it posts to
(``herald.storage.recipients``), checked on every post against the
queue's subscription version (``herald.storage.subscription_versions``).
Here, on every backend: after each kind of subscription change the NEXT
post notifies exactly the new set -- webhooks (outbox rows) and websocket
connections (broadcasts) -- including a change made through another worker
with a cache of its own, and an expiry, which changes nothing in the
database. Then that a hit does not read the subscriptions at all, and that
broadcasts built from the memory are the ones a fresh read builds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common.rpc.coalescer import op_to_wire
from herald.storage import recipients
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database, make_engine
from herald.storage.outbox import OutboxController
from herald.storage.schema import subscription_versions
from herald.storage.subscriptions import SubscriptionController

from .conftest import make_ctxt

GW = "gw.1.abc"


def connection(name: str, gateway: str = GW) -> dict[str, str]:
    return {"gateway_id": gateway, "connection_id": name.ljust(32, "0")}


class Notified:
    """Who each post notified: its outbox rows and its websocket broadcasts."""

    def __init__(self, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.database = database
        self.broadcasts: list[Any] = []
        # The process's sender drops them (no gateway in these tests): keep them.
        monkeypatch.setattr(database.wiring.broadcasts, "send", self.broadcasts.extend)

    def post(self, endpoint: Any, ctxt: Any, body: Any = 1, queue: str = "q") -> set[str]:
        """Post one message; the webhooks (subscriber URIs) and websocket
        connection ids (``gateway/connection``) it notified."""
        self.broadcasts.clear()
        [message_id] = endpoint.message_post(ctxt, queue=queue, body_size=10,
                                             messages=[{"body": body, "ttl": 300}])
        return self.of(message_id)

    def of(self, message_id: str) -> set[str]:
        hooks = {row.subscriber for row in OutboxController(self.database).rows()
                 if row.message_id == message_id}
        pushed = {f"{b.gateway_id}/{c[:2]}" for b in self.broadcasts for c in b.connections}
        return hooks | pushed


@pytest.fixture
def notified(database: Database, monkeypatch: pytest.MonkeyPatch) -> Notified:
    return Notified(database, monkeypatch)


@pytest.fixture
def second_worker(database_url: str, conf: Any, notified: Notified,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageEndpoint]:
    """Another storage process on the queues' database: its own engine and
    wiring, so its own memory of recipients (its broadcasts kept too)."""
    db = Database(make_engine(database_url, pool_size=4))
    monkeypatch.setattr(db.wiring.broadcasts, "send", notified.broadcasts.extend)
    yield StorageEndpoint(db, conf)
    db.dispose()


def hook(endpoint: Any, ctxt: Any, name: str, queue: str = "q", **kw: Any) -> str:
    return endpoint.subscription_create(ctxt, queue=queue, subscriber=f"http://h/{name}",
                                        ttl=kw.pop("ttl", None),
                                        options=kw.pop("options", None), **kw)["subscription_id"]


def ws(endpoint: Any, ctxt: Any, name: str, gateway: str = GW, queue: str = "q",
       options: dict[str, Any] | None = None) -> str:
    return endpoint.subscription_create(ctxt, queue=queue, subscriber=None, ttl=None,
                                        options=options,
                                        connection=connection(name, gateway))["subscription_id"]


def test_create_and_delete_are_seen_by_the_next_post(endpoint, ctxt, notified):
    endpoint.queue_create(ctxt, queue="q")
    assert notified.post(endpoint, ctxt) == set()
    a = hook(endpoint, ctxt, "a")
    assert notified.post(endpoint, ctxt) == {"http://h/a"}
    ws(endpoint, ctxt, "c1")
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}  # remembered
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=a)
    assert notified.post(endpoint, ctxt) == {f"{GW}/c1"}
    endpoint.queue_purge(ctxt, queue="q", resource_types=["subscriptions"])
    assert notified.post(endpoint, ctxt) == set()


def test_a_patch_of_filter_subscriber_or_ttl_is_seen_by_the_next_post(endpoint, ctxt,
                                                                     notified, clock):
    sid = hook(endpoint, ctxt, "a", options={"filter": {"kind": ["never"]}})
    assert notified.post(endpoint, ctxt, {"kind": "x"}) == set()
    endpoint.subscription_update(ctxt, queue="q", subscription_id=sid,
                                 changes={"options": {"filter": {"kind": ["x"]}}})
    assert notified.post(endpoint, ctxt, {"kind": "x"}) == {"http://h/a"}
    endpoint.subscription_update(ctxt, queue="q", subscription_id=sid,
                                 changes={"subscriber": "http://h/b"})
    assert notified.post(endpoint, ctxt, {"kind": "x"}) == {"http://h/b"}
    endpoint.subscription_update(ctxt, queue="q", subscription_id=sid, changes={"ttl": 20})
    assert notified.post(endpoint, ctxt, {"kind": "x"}) == {"http://h/b"}
    clock.advance(21)  # the new expiry, not the old one, counts
    assert notified.post(endpoint, ctxt, {"kind": "x"}) == set()


def test_confirmation_is_seen_by_the_next_post(endpoint, ctxt, notified, conf):
    conf.set_override("require_confirmation", True, group="notification")
    try:
        sid = hook(endpoint, ctxt, "a")
        ws(endpoint, ctxt, "c1")  # connections count as confirmed
        assert notified.post(endpoint, ctxt) == {f"{GW}/c1"}
        endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=True)
        assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}
        endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=False)
        assert notified.post(endpoint, ctxt) == {f"{GW}/c1"}
    finally:
        conf.clear_override("require_confirmation", group="notification")
    # The same worker without the option: every subscription, at once.
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}


def test_connection_and_gateway_clean_ups_are_seen_by_the_next_post(endpoint, ctxt,
                                                                    notified):
    ws(endpoint, ctxt, "c1")
    ws(endpoint, ctxt, "c2")
    ws(endpoint, ctxt, "c3", gateway="gw.2.def")
    ws(endpoint, ctxt, "c1", queue="q2")
    assert notified.post(endpoint, ctxt) == {f"{GW}/c1", f"{GW}/c2", "gw.2.def/c3"}
    assert notified.post(endpoint, ctxt, queue="q2") == {f"{GW}/c1"}
    # A connection closed: its subscriptions on every queue go.
    assert endpoint.subscription_delete_connection(ctxt, **connection("c1")) == 2
    assert notified.post(endpoint, ctxt) == {f"{GW}/c2", "gw.2.def/c3"}
    assert notified.post(endpoint, ctxt, queue="q2") == set()
    # A gateway died (BroadcastSender's and the gateway's own clean-up).
    endpoint.subscription_delete_connection(ctxt, gateway_id=GW, connection_id=None)
    assert notified.post(endpoint, ctxt) == {"gw.2.def/c3"}


def test_an_expired_subscription_is_not_notified_though_remembered(endpoint, ctxt,
                                                                   notified, clock,
                                                                   database, conf):
    hook(endpoint, ctxt, "short", ttl=20)
    hook(endpoint, ctxt, "long", ttl=3600)
    ws(endpoint, ctxt, "c1")
    assert notified.post(endpoint, ctxt) == {"http://h/short", "http://h/long", f"{GW}/c1"}
    clock.advance(10)
    assert notified.post(endpoint, ctxt) == {"http://h/short", "http://h/long", f"{GW}/c1"}
    clock.advance(11)  # nothing changes in the database (and well within MAX_AGE_SECONDS)
    assert notified.post(endpoint, ctxt) == {"http://h/long", f"{GW}/c1"}
    assert notified.post(endpoint, ctxt) == {"http://h/long", f"{GW}/c1"}
    # The expiry GC deleting it changes nobody's notifications either.
    assert SubscriptionController(database, conf).collect_garbage(ctxt.project_id, "q") == 1
    assert notified.post(endpoint, ctxt) == {"http://h/long", f"{GW}/c1"}


def test_a_change_through_another_worker_is_seen_at_once(endpoint, second_worker, ctxt,
                                                        notified):
    endpoint.queue_create(ctxt, queue="q")
    for worker in (endpoint, second_worker):  # both remember "nobody"
        assert notified.post(worker, ctxt) == set()
    a = hook(second_worker, ctxt, "a")
    assert notified.post(endpoint, ctxt) == {"http://h/a"}
    ws(endpoint, ctxt, "c1")
    assert notified.post(second_worker, ctxt) == {"http://h/a", f"{GW}/c1"}
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=a)
    assert notified.post(second_worker, ctxt) == {f"{GW}/c1"}
    second_worker.subscription_delete_connection(ctxt, **connection("c1"))
    assert notified.post(endpoint, ctxt) == set()


def test_a_coalesced_post_to_several_queues_sees_each_queue_as_it_is(endpoint, ctxt,
                                                                    notified, database):
    hook(endpoint, ctxt, "a", queue="q1")
    hook(endpoint, ctxt, "b", queue="q2")

    def both() -> set[str]:
        replies = endpoint.batch(make_ctxt(""), ops=[op_to_wire(ctxt, "message_post", {
            "queue": queue, "body_size": 10, "messages": [{"body": queue, "ttl": 300}]})
            for queue in ("q1", "q2")])
        return set().union(*(notified.of(reply["result"][0]) for reply in replies))

    assert both() == {"http://h/a", "http://h/b"}
    hook(endpoint, ctxt, "c", queue="q2")  # q1's memory stays good, q2's does not
    assert both() == {"http://h/a", "http://h/b", "http://h/c"}
    assert both() == {"http://h/a", "http://h/b", "http://h/c"}


def test_a_post_with_remembered_recipients_does_not_read_the_subscriptions(
        endpoint, ctxt, notified, database):
    """Rows changed behind the workers' back (no version bump) are not seen
    until a real change bumps the version: the post did not read them."""
    hook(endpoint, ctxt, "a")
    ws(endpoint, ctxt, "c1")
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}
    first = notified.broadcasts[0].connections
    with database.engine.begin() as conn:
        conn.execute(sa.text("UPDATE subscriptions SET subscriber = 'http://h/sneaky'"
                             " WHERE subscriber = 'http://h/a'"))
    assert notified.post(endpoint, ctxt) == {"http://h/a", f"{GW}/c1"}
    # The remembered list itself: the gateway merges equal lists cheaply.
    assert notified.broadcasts[0].connections is first
    hook(endpoint, ctxt, "b")
    assert notified.post(endpoint, ctxt) == {"http://h/sneaky", "http://h/b", f"{GW}/c1"}


def test_remembered_recipients_are_read_again_after_max_age(endpoint, ctxt, notified,
                                                             database, clock):
    """A bound on a change that did not bump the version (a worker of an
    older release, a restored database): read again after MAX_AGE_SECONDS."""
    hook(endpoint, ctxt, "a")
    assert notified.post(endpoint, ctxt) == {"http://h/a"}
    with database.engine.begin() as conn:
        conn.execute(sa.text("UPDATE subscriptions SET subscriber = 'http://h/sneaky'"))
    clock.advance(recipients.MAX_AGE_SECONDS - 1)
    assert notified.post(endpoint, ctxt) == {"http://h/a"}
    clock.advance(1)
    assert notified.post(endpoint, ctxt) == {"http://h/sneaky"}


def test_remembered_broadcasts_are_those_a_fresh_read_builds(endpoint, second_worker,
                                                             ctxt, notified):
    """Filter policies split a gateway's connections by the messages they
    select; two policies selecting the same messages of a post share one
    broadcast, its connections in subscription order, whether the
    recipients were read or remembered."""
    under_100 = {"filter": {"n": [{"numeric": ["<", 100]}]}}
    under_50 = {"filter": {"n": [{"numeric": ["<", 50]}]}}
    for i in range(12):
        ws(endpoint, ctxt, f"c{i:02d}", gateway=("gw.1.abc", "gw.2.def")[i % 2],
           options=(None, under_100, under_50)[i % 3])

    def broadcasts(worker: Any) -> list[tuple[str, list[str], list[Any]]]:
        notified.broadcasts.clear()
        worker.message_post(ctxt, queue="q", body_size=10,
                            messages=[{"body": {"n": n}, "ttl": 300} for n in (10, 200)])
        return [(b.gateway_id, [c[:3] for c in b.connections],
                 [p["body"]["n"] for p in b.payloads]) for b in notified.broadcasts]

    read = broadcasts(endpoint)
    assert read == [
        ("gw.1.abc", ["c00", "c06"], [10, 200]),
        ("gw.2.def", ["c01", "c05", "c07", "c11"], [10]),  # both policies: only 10
        ("gw.1.abc", ["c02", "c04", "c08", "c10"], [10]),
        ("gw.2.def", ["c03", "c09"], [10, 200]),
    ]
    assert broadcasts(endpoint) == read  # remembered
    assert broadcasts(second_worker) == read  # read by a worker that never posted here


def test_every_subscription_write_bumps_its_queue_version(endpoint, ctxt, database, conf,
                                                         clock):
    def version(queue: str = "q") -> int:
        with database.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.sum(subscription_versions.c.version)).where(
                subscription_versions.c.project == ctxt.project_id,
                subscription_versions.c.queue == queue)).scalar_one_or_none() or 0

    seen = [version()]

    def bumped() -> bool:
        seen.append(version())
        return seen[-1] > seen[-2]

    sid = hook(endpoint, ctxt, "a")
    assert bumped()
    hook(endpoint, ctxt, "a")  # the same subscriber again: nothing written
    assert not bumped()
    endpoint.subscription_update(ctxt, queue="q", subscription_id=sid, changes={"ttl": 60})
    assert bumped()
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=True)
    assert bumped()
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=sid)
    assert bumped()
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=sid)  # nothing to delete
    assert not bumped()
    ws(endpoint, ctxt, "c1")
    ws(endpoint, ctxt, "c1", queue="q2")
    assert bumped()
    q2 = version("q2")
    endpoint.subscription_delete_connection(ctxt, **connection("c1"))
    assert bumped() and version("q2") > q2
    ws(endpoint, ctxt, "c2")
    assert bumped()
    endpoint.subscription_delete_connection(ctxt, gateway_id=GW, connection_id=None)
    assert bumped()
    hook(endpoint, ctxt, "b", ttl=20)
    assert bumped()
    clock.advance(21)
    assert SubscriptionController(database, conf).collect_garbage(ctxt.project_id, "q") == 1
    assert bumped()
    hook(endpoint, ctxt, "c")
    assert bumped()
    endpoint.queue_purge(ctxt, queue="q", resource_types=["subscriptions"])
    assert bumped()
