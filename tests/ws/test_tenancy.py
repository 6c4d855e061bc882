"""Tenancy over the websocket gateway: project B never sees, uses or changes A's.

The websocket has no pool, flavor, topic or delivery-history actions (the
schema knows the pool and flavor ones; they answer 400), so what it can
reach of another project's is: queue placement on a flavor
(``queue_create`` with ``_flavor``), and queues, messages, claims and
subscriptions by name and id. The decision these tests hold the gateway to
is tests/api/test_tenancy.py's (``herald.storage.pools``): flavors are per
project, everything else is looked up by (project, queue, id).

Project A has a pool and the flavor ``gold`` (made at the storage API, as
the REST admin API would), and a queue placed on it with messages, a live
claim and a subscription. Project B, knowing every name and id, makes one
attempt per case; then A's state, as A reads it over the websocket, must be
exactly as before. Every case runs with a keystone gateway (each
connection sends ``authenticate`` with a token of its project first) and a
noauth one.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common import coordination
from herald.common.context import RequestContext
from herald.ws_gateway.service import WSGatewayService
from tests.fake_keystone import FakeKeystone
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, make_conf, ws_url

QUEUE = "q"
FLAVOR = "gold"


@dataclasses.dataclass
class Mode:
    harness: GatewayHarness
    gateway: WSGatewayService
    keystone: FakeKeystone | None

    def connect(self, project: str) -> WSClient:
        client = WSClient(ws_url(self.gateway), project)
        if self.keystone is not None:
            token = self.keystone.issue(project)
            reply = client.call("authenticate",
                                headers={**client.headers, "X-Auth-Token": token})
            assert reply["headers"]["status"] == 200, reply
        return client


@pytest.fixture(scope="module", params=["keystone", "noauth"])
def mode(request: pytest.FixtureRequest, harness: GatewayHarness,
         keystone: FakeKeystone) -> Mode:
    # The worker places flavored queues only with pooling on.
    harness.conf.set_override("pooling", True)
    if request.param == "noauth":
        return Mode(harness, harness.gateway(), None)
    conf = make_conf(harness.tmp)
    keystone.configure(conf)
    service = WSGatewayService(conf, harness.storage, coordination.new_member_id(),
                               local=harness.worker.local)
    harness.run(service.start())
    harness.gateways.append(service)
    return Mode(harness, service, keystone)


@dataclasses.dataclass
class World:
    a: WSClient
    b: WSClient
    a_project: str
    b_project: str
    pool_uri: str
    message_ids: list[str]
    claim_id: str
    claimed_id: str
    subscription_id: str


def _ok(reply: tuple[int, Any], status: int = 200) -> Any:
    assert reply[0] == status, reply
    return reply[1]


@pytest.fixture
def world(mode: Mode, tmp_path: Path) -> Iterator[World]:
    a_project, b_project = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    pool = f"pa-{uuid.uuid4().hex[:8]}"
    pool_uri = f"sqlite:///{tmp_path}/{pool}.sqlite"
    admin = RequestContext(project_id=a_project, roles=("admin",))
    mode.harness.run(mode.harness.storage.pool_put(admin, pool, pool_uri, 1, None, {}))
    mode.harness.run(mode.harness.storage.flavor_put(admin, FLAVOR, [pool], {}))
    with mode.connect(a_project) as a, mode.connect(b_project) as b:
        _ok(a.status_body("queue_create", {"queue_name": QUEUE, "metadata": {
            "_flavor": FLAVOR, "colour": "blue"}}), 201)
        ids = _ok(a.status_body("message_post", {"queue_name": QUEUE, "messages": [
            {"body": {"n": n}, "ttl": 600} for n in range(3)]}), 201)["message_ids"]
        claim = _ok(a.status_body("claim_create", {"queue_name": QUEUE, "limit": 1}), 201)
        sid = _ok(a.status_body("subscription_create", {
            "queue_name": QUEUE, "subscriber": "http://127.0.0.1:9/a"}),
            201)["subscription_id"]
        assert _rows_in(pool_uri, a_project, QUEUE) == 3  # placed on A's pool
        yield World(a=a, b=b, a_project=a_project, b_project=b_project, pool_uri=pool_uri,
                    message_ids=ids, claim_id=claim["claim_id"],
                    claimed_id=claim["messages"][0]["id"], subscription_id=sid)


def _rows_in(url: str, project: str, queue: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.text("SELECT count(*) FROM messages WHERE project = :p AND queue = :q"),
                {"p": project, "q": queue}).scalar_one())
    finally:
        engine.dispose()


def a_state(w: World) -> dict[str, Any]:
    a = w.a

    def call(action: str, **body: Any) -> Any:
        return _ok(a.status_body(action, {"queue_name": QUEUE, **body}))

    claim = call("claim_get", claim_id=w.claim_id)
    subscription = call("subscription_get", subscription_id=w.subscription_id)
    return {
        "queues": [x["name"] for x in _ok(a.status_body("queue_list"))["queues"]],
        "metadata": call("queue_get"),
        "stats": {k: v for k, v in call("queue_get_stats")["messages"].items()
                  if k in ("free", "claimed", "total")},
        "messages": sorted(m["id"] for m in call("message_list", echo=True,
                                                 include_claimed=True)["messages"]),
        "in_pool": _rows_in(w.pool_uri, w.a_project, QUEUE),
        "claim": {"ttl": claim["ttl"], "messages": [m["id"] for m in claim["messages"]]},
        "subscriptions": sorted(s["id"] for s in call("subscription_list")["subscriptions"]),
        "subscription": {k: v for k, v in subscription.items() if k != "age"},
    }


def _b(w: World, action: str, **body: Any) -> tuple[int, Any]:
    return w.b.status_body(action, {"queue_name": QUEUE, **body})


# -- the cases: one attempt of B each --------------------------------------------

def queue_on_a_flavor(w: World) -> None:
    status, body = w.b.status_body("queue_create", {"queue_name": "bq",
                                                    "metadata": {"_flavor": FLAVOR}})
    assert status == 400 and f"Flavor {FLAVOR} does not exist" in str(body), (status, body)
    assert _ok(w.b.status_body("queue_list"))["queues"] == []


def queue_reads(w: World) -> None:
    assert _ok(w.b.status_body("queue_list"))["queues"] == []
    assert _ok(_b(w, "queue_get")) == {}
    assert _b(w, "queue_get_stats")[0] == 404
    assert _ok(_b(w, "message_list", echo=True, include_claimed=True))["messages"] == []


def queue_writes(w: World) -> None:
    # B's own queue of the same name: the main database, never A's pool.
    _ok(_b(w, "queue_create", metadata={"colour": "red"}), 201)
    _ok(_b(w, "message_post", messages=[{"body": "b", "ttl": 60}]), 201)
    assert _rows_in(w.pool_uri, w.b_project, QUEUE) == 0
    assert _b(w, "claim_create", limit=10)[0] == 201  # B's message, not A's
    _ok(_b(w, "queue_purge"), 204)
    _ok(_b(w, "queue_delete"), 204)


def messages_by_id(w: World) -> None:
    assert _b(w, "message_get", message_id=w.message_ids[2])[0] == 404
    assert _ok(_b(w, "message_get_many", message_ids=w.message_ids))["messages"] == []
    _b(w, "message_delete", message_id=w.message_ids[2])
    _b(w, "message_delete_many", message_ids=w.message_ids)
    assert _b(w, "message_delete_many", pop=5)[1].get("messages", []) == []


def claim_get(w: World) -> None:
    assert _b(w, "claim_get", claim_id=w.claim_id)[0] == 404


def claim_update(w: World) -> None:
    assert _b(w, "claim_update", claim_id=w.claim_id, ttl=60)[0] == 404


def claim_delete(w: World) -> None:
    assert _b(w, "claim_delete", claim_id=w.claim_id)[0] == 204
    _b(w, "message_delete", message_id=w.claimed_id, claim_id=w.claim_id)
    assert _b(w, "claim_create", limit=10)[0] == 204


def message_release(w: World) -> None:
    assert _b(w, "message_release", message_id=w.claimed_id, claim_id=w.claim_id)[0] == 404


def subscription_get(w: World) -> None:
    assert _b(w, "subscription_get", subscription_id=w.subscription_id)[0] == 404
    assert _ok(_b(w, "subscription_list"))["subscriptions"] == []


def subscription_delete(w: World) -> None:
    assert _b(w, "subscription_delete", subscription_id=w.subscription_id)[0] == 204


def subscription_same_subscriber(w: World) -> None:
    made = _ok(_b(w, "subscription_create", subscriber="http://127.0.0.1:9/a"), 201)
    assert made["subscription_id"] != w.subscription_id


CASES: dict[str, Callable[[World], None]] = {
    case.__name__.replace("_", "-"): case for case in (
        queue_on_a_flavor, queue_reads, queue_writes, messages_by_id,
        claim_get, claim_update, claim_delete, message_release,
        subscription_get, subscription_delete, subscription_same_subscriber,
    )
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_b_cannot_see_use_or_change_a(world: World, case: str) -> None:
    before = a_state(world)
    CASES[case](world)
    assert a_state(world) == before


def test_a_places_its_queue_on_its_flavor(world: World) -> None:
    state = a_state(world)
    assert state["metadata"]["_flavor"] == FLAVOR and state["in_pool"] == 3
