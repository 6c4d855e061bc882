"""Tenancy of every resource over REST: project B never sees, uses or changes A's.

The decision (``herald.storage.pools``; docs/security.md):

* pools are global operator objects: the admin role of any project reads,
  creates and tunes any pool, but a pool's place in a flavor is the
  flavor's project's, and what a pool shows as its ``flavor`` is the
  reader's project's flavor (``None`` when only another project uses it);
  a pool another project's flavor uses cannot be deleted;
* flavors are per project, looked up by (project, name) for listing, get,
  put, patch, delete and queue placement: another project's flavor does not
  exist for B, whatever B's roles;
* queues, messages, claims, subscriptions, topics and delivery history are
  looked up by (project, queue, id).

Every test builds a world of its own: project A (a member and an admin)
owns two pools in its flavor ``gold`` (``pool`` holds A's queue; ``spare``
has weight 0 and holds nothing, so deleting it is never refused for
holding queues), a queue placed on ``gold`` with messages, a live claim and
a subscription, a topic placed on ``gold`` with a message and a
subscription, and the claimed message's delivery history. Project B (a
member and an admin) knows every name and id and makes one attempt per
case. Each case checks B's answer, then that A's state, as A reads it, is
exactly as before.

Every case runs in keystone mode (project and roles from a token validated
against ``tests.fake_keystone``) and in noauth mode (project and roles from
the headers, as the reference does).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Client, Stack, assert_error
from tests.fake_keystone import FakeKeystone

QUEUE = "q"
TOPIC = "t"
FLAVOR = "gold"


@dataclasses.dataclass
class Tenant:
    project: str
    member: Client
    admin: Client


@dataclasses.dataclass
class World:
    a: Tenant
    b: Tenant
    tmp: Path
    pool: str
    pool_uri: str
    spare: str
    spare_uri: str
    message_ids: list[str]
    claim_id: str
    claimed_id: str
    subscription_id: str
    topic_message_id: str
    topic_subscription_id: str

    def b_pool(self) -> str:
        """A pool B's admin registers (global: any admin may)."""
        name = f"pb-{uuid.uuid4().hex[:8]}"
        resp = self.b.admin.put(f"/v2/pools/{name}", json_body={
            "uri": f"sqlite:///{self.tmp}/{name}.sqlite", "weight": 1, "options": {}})
        assert resp.status_code == 201, resp.text
        return name


@dataclasses.dataclass
class Mode:
    stack: Stack
    keystone: FakeKeystone | None

    def tenant(self) -> Tenant:
        project = f"p-{uuid.uuid4().hex[:12]}"

        def client(roles: list[str]) -> Client:
            c = Client(self.stack.base_url, project=project)
            if self.keystone is not None:
                c.session.headers["X-Auth-Token"] = self.keystone.issue(project, roles)
            else:
                c.session.headers["X-Roles"] = ",".join(roles)
            return c

        return Tenant(project, client(["member"]), client(["admin"]))


@pytest.fixture(scope="module", params=["keystone", "noauth"])
def mode(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mode]:
    stack = Stack(tmp_path_factory.mktemp(f"tenancy-{request.param}"))
    fake = FakeKeystone() if request.param == "keystone" else None
    if fake is not None:
        fake.configure(stack.conf)
    stack.conf.set_override("admin_mode", True)
    stack.conf.set_override("pooling", True)
    try:
        yield Mode(stack, fake)
    finally:
        stack.close()
        if fake is not None:
            fake.close()


def _created(resp: Any) -> Any:
    assert resp.status_code == 201, (resp.status_code, resp.text)
    return resp


@pytest.fixture
def world(mode: Mode, tmp_path: Path) -> World:
    a, b = mode.tenant(), mode.tenant()
    suffix = uuid.uuid4().hex[:8]
    pool, spare = f"pa-{suffix}", f"ps-{suffix}"
    pool_uri = f"sqlite:///{tmp_path}/{pool}.sqlite"
    spare_uri = f"sqlite:///{tmp_path}/{spare}.sqlite"
    _created(a.admin.put(f"/v2/pools/{pool}",
                         json_body={"uri": pool_uri, "weight": 1, "options": {}}))
    _created(a.admin.put(f"/v2/pools/{spare}",
                         json_body={"uri": spare_uri, "weight": 0, "options": {}}))
    _created(a.admin.put(f"/v2/flavors/{FLAVOR}", json_body={"pool_list": [pool, spare]}))

    q = f"/v2/queues/{QUEUE}"
    _created(a.member.put(q, json_body={"_flavor": FLAVOR, "colour": "blue"}))
    message_ids = a.member.post_messages(QUEUE, 3, ttl=600)
    claim_id, claimed = a.member.claim(QUEUE, ttl=300, limit=1)
    subscription_id = _created(a.member.post(f"{q}/subscriptions", json_body={
        "subscriber": "http://127.0.0.1:9/a", "ttl": 3600})).json()["subscription_id"]

    t = f"/v2/topics/{TOPIC}"
    _created(a.member.put(t, json_body={"_flavor": FLAVOR, "note": "a"}))
    posted = _created(a.member.post(f"{t}/messages", json_body={
        "messages": [{"body": "topical", "ttl": 600}]})).json()
    topic_subscription_id = _created(a.member.post(f"{t}/subscriptions", json_body={
        "subscriber": "http://127.0.0.1:9/t", "ttl": 3600})).json()["subscription_id"]

    w = World(a=a, b=b, tmp=tmp_path, pool=pool, pool_uri=pool_uri, spare=spare,
              spare_uri=spare_uri, message_ids=message_ids, claim_id=claim_id,
              claimed_id=claimed[0]["id"], subscription_id=subscription_id,
              topic_message_id=posted["resources"][0].rsplit("/", 1)[1],
              topic_subscription_id=topic_subscription_id)
    # The world is what the cases assume: A's queue and topic live in A's pool.
    assert _rows_in(pool_uri, "messages", a.project, QUEUE) == 3
    assert _rows_in(pool_uri, "messages", None, TOPIC) == 1
    return w


def _rows_in(url: str, table: str, project: str | None, queue: str) -> int:
    """Rows of ``table`` for ``queue`` in one database (any project if None)."""
    engine = sa.create_engine(url)
    try:
        stmt = f"SELECT count(*) FROM {table} WHERE queue = :q"
        params = {"q": queue}
        if project is not None:
            stmt += " AND project = :p"
            params["p"] = project
        with engine.connect() as conn:
            return int(conn.execute(sa.text(stmt), params).scalar_one())
    finally:
        engine.dispose()


def _all_pools(client: Client) -> dict[str, dict[str, Any]]:
    """Every pool the client sees, page by page (pools are global: other
    tests' pools are listed too)."""
    found: dict[str, dict[str, Any]] = {}
    path = "/v2/pools?detailed=true&limit=20"
    while True:
        resp = client.get(path)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        if not page["pools"]:
            return found
        found.update({p["name"]: p for p in page["pools"]})
        path = page["links"][0]["href"]


_SUBSCRIPTION_KEYS = ("id", "source", "subscriber", "ttl", "options", "confirmed")


def a_state(w: World) -> dict[str, Any]:
    """Everything of A's, as A reads it (ages left out: they move)."""
    member, admin = w.a.member, w.a.admin
    q, t = f"/v2/queues/{QUEUE}", f"/v2/topics/{TOPIC}"

    def ok(resp: Any) -> Any:
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.json()

    def subscriptions(path: str) -> list[dict[str, Any]]:
        return [{k: s[k] for k in _SUBSCRIPTION_KEYS}
                for s in ok(member.get(path))["subscriptions"]]

    claim = ok(member.get(f"{q}/claims/{w.claim_id}"))
    history = ok(member.get(f"{q}/messages/{w.claimed_id}/deliveries"))
    return {
        "flavors": ok(member.get("/v2/flavors?detailed=true"))["flavors"],
        "flavor": ok(member.get(f"/v2/flavors/{FLAVOR}")),
        "pools": [ok(admin.get(f"/v2/pools/{name}?detailed=true"))
                  for name in (w.pool, w.spare)],
        "queues": [x["name"] for x in ok(member.get("/v2/queues"))["queues"]],
        "metadata": ok(member.get(q)),
        "stats": {k: v for k, v in ok(member.get(f"{q}/stats"))["messages"].items()
                  if k in ("free", "claimed", "total")},
        "messages": sorted(m["id"] for m in ok(member.get(
            f"{q}/messages?echo=true&include_claimed=true"))["messages"]),
        "in_pool": _rows_in(w.pool_uri, "messages", w.a.project, QUEUE),
        "claim": {"ttl": claim["ttl"], "messages": [m["id"] for m in claim["messages"]]},
        "subscriptions": subscriptions(f"{q}/subscriptions"),
        "subscription": {k: ok(member.get(f"{q}/subscriptions/{w.subscription_id}"))[k]
                         for k in _SUBSCRIPTION_KEYS},
        "history": [c["claim_id"] for c in history["claims"]],
        "topics": [x["name"] for x in ok(member.get("/v2/topics"))["topics"]],
        "topic": ok(member.get(t)),
        "topic_stats": ok(member.get(f"{t}/stats"))["messages"]["total"],
        "topic_messages": sorted(m["id"] for m in ok(member.get(
            f"{t}/messages?echo=true"))["messages"]),
        "topic_subscriptions": subscriptions(f"{t}/subscriptions"),
    }


# -- the cases: one attempt of B each --------------------------------------------

def flavor_get(w: World) -> None:
    for client in (w.b.member, w.b.admin):
        assert_error(client.get(f"/v2/flavors/{FLAVOR}"), 404)


def flavor_list(w: World) -> None:
    for client in (w.b.member, w.b.admin):
        assert client.get("/v2/flavors?detailed=true").json()["flavors"] == []


def flavor_patch(w: World) -> None:
    assert_error(w.b.admin.patch(f"/v2/flavors/{FLAVOR}", json_body={"pool_list": [w.pool]}),
                 404)


def flavor_put_same_name(w: World) -> None:
    # B's own flavor of the same name: a new one, A's is untouched.
    own = w.b_pool()
    _created(w.b.admin.put(f"/v2/flavors/{FLAVOR}", json_body={"pool_list": [own]}))
    assert w.b.admin.get(f"/v2/flavors/{FLAVOR}").json()["pool_list"] == [own]
    # ... and B's queues on it go to B's pool, never to A's.
    _created(w.b.member.put("/v2/queues/bq", json_body={"_flavor": FLAVOR}))
    w.b.member.post_messages("bq", 1)
    assert _rows_in(f"sqlite:///{w.tmp}/{own}.sqlite", "messages", w.b.project, "bq") == 1
    assert _rows_in(w.pool_uri, "messages", None, "bq") == 0


def flavor_delete(w: World) -> None:
    assert w.b.admin.delete(f"/v2/flavors/{FLAVOR}").status_code == 204


def flavor_writes_need_admin(w: World) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        assert_error(w.b.member.request(method, f"/v2/flavors/{FLAVOR}",
                                        json_body={"pool_list": [w.pool]}), 403)


def flavor_shares_a_pool(w: World) -> None:
    # Pools are global: B's flavor may use A's pool, without taking it away.
    _created(w.b.admin.put("/v2/flavors/silver", json_body={"pool_list": [w.spare]}))
    assert w.b.admin.get("/v2/flavors/silver").json()["pool_list"] == [w.spare]


def pool_calls_need_admin(w: World) -> None:
    for method, path in (("GET", "/v2/pools"), ("GET", f"/v2/pools/{w.pool}"),
                         ("PUT", f"/v2/pools/{w.spare}"), ("PATCH", f"/v2/pools/{w.spare}"),
                         ("DELETE", f"/v2/pools/{w.spare}")):
        assert_error(w.b.member.request(method, path, json_body={"weight": 5}), 403)


def pool_get(w: World) -> None:
    # Global: B's admin sees the pool, but not which flavor of A's uses it.
    got = w.b.admin.get(f"/v2/pools/{w.pool}?detailed=true")
    assert got.status_code == 200, got.text
    assert got.json() == {"name": w.pool, "uri": w.pool_uri, "weight": 1, "flavor": None,
                          "options": {}, "href": f"/v2/pools/{w.pool}"}


def pool_list(w: World) -> None:
    listed = _all_pools(w.b.admin)
    assert listed[w.pool]["flavor"] is None and listed[w.spare]["flavor"] is None


def pool_patch_flavor(w: World) -> None:
    detached = w.b.admin.patch(f"/v2/pools/{w.spare}", json_body={"flavor": ""})
    assert detached.status_code == 200 and detached.json()["flavor"] is None
    # Into a flavor of B's: the pool is shared, A's flavor keeps it.
    moved = w.b.admin.patch(f"/v2/pools/{w.spare}", json_body={"flavor": "silver"})
    assert moved.status_code == 200 and moved.json()["flavor"] == "silver"


def pool_put_overwrite(w: World) -> None:
    # Overwriting the pool (no flavor named) leaves A's flavor alone.
    _created(w.b.admin.put(f"/v2/pools/{w.spare}",
                           json_body={"uri": w.spare_uri, "weight": 0, "options": {}}))


def pool_delete(w: World) -> None:
    # spare holds nothing and is not gold's last pool: only A's use of it
    # stops B.
    assert_error(w.b.admin.delete(f"/v2/pools/{w.spare}"), 409)
    assert_error(w.b.admin.delete(f"/v2/pools/{w.pool}"), 409)


def queue_on_a_flavor(w: World) -> None:
    for client, name in ((w.b.member, "bq"), (w.b.admin, "bq2")):
        assert_error(client.put(f"/v2/queues/{name}", json_body={"_flavor": FLAVOR}), 400,
                     description=f"Flavor {FLAVOR} does not exist")
    assert w.b.member.get("/v2/queues").json()["queues"] == []


def topic_on_a_flavor(w: World) -> None:
    assert_error(w.b.member.put("/v2/topics/bt", json_body={"_flavor": FLAVOR}), 400,
                 description=f"Flavor {FLAVOR} does not exist")
    assert w.b.member.get("/v2/topics").json()["topics"] == []


def queue_by_name(w: World) -> None:
    b, q = w.b.member, f"/v2/queues/{QUEUE}"
    assert b.get("/v2/queues").json()["queues"] == []
    assert b.head(q).status_code == 404  # Queue.exists(): A's queue is not B's
    assert "colour" not in b.get(q).json() and "_flavor" not in b.get(q).json()
    assert b.get(f"{q}/stats").json()["messages"]["total"] == 0
    assert b.get(f"{q}/messages?echo=true&include_claimed=true").json()["messages"] == []
    assert b.post(f"{q}/claims", json_body={"ttl": 60}).status_code == 204
    # B's own queue of the same name lives in the main database.
    _created(b.put(q, json_body={"colour": "red"}))
    b.post_messages(QUEUE, 1)
    assert _rows_in(w.pool_uri, "messages", w.b.project, QUEUE) == 0
    assert b.post(f"{q}/purge", json_body={"resource_types": ["messages", "subscriptions"]}
                  ).status_code == 204
    assert b.delete(q).status_code == 204


def messages_by_id(w: World) -> None:
    b, q = w.b.member, f"/v2/queues/{QUEUE}"
    assert_error(b.get(f"{q}/messages/{w.message_ids[2]}"), 404)
    assert_error(b.get(f"{q}/messages?ids={','.join(w.message_ids)}"), 404)
    assert b.delete(f"{q}/messages/{w.message_ids[2]}").status_code == 204
    assert b.delete(f"{q}/messages?ids={','.join(w.message_ids)}").status_code == 204
    assert b.delete(f"{q}/messages?pop=5").json().get("messages", []) == []


def claim_get(w: World) -> None:
    assert_error(w.b.member.get(f"/v2/queues/{QUEUE}/claims/{w.claim_id}"), 404)


def claim_renew(w: World) -> None:
    assert_error(w.b.member.patch(f"/v2/queues/{QUEUE}/claims/{w.claim_id}",
                                  json_body={"ttl": 60}), 404)


def claim_release(w: World) -> None:
    assert w.b.member.delete(f"/v2/queues/{QUEUE}/claims/{w.claim_id}").status_code == 204


def claimed_message_delete(w: World) -> None:
    resp = w.b.member.delete(
        f"/v2/queues/{QUEUE}/messages/{w.claimed_id}?claim_id={w.claim_id}")
    assert resp.status_code in (204, 400), resp.text


def claimed_message_release(w: World) -> None:
    # A's message id and claim id do not exist in B's project: 404, A's claim intact.
    assert_error(w.b.member.post(
        f"/v2/queues/{QUEUE}/messages/{w.claimed_id}/release?claim_id={w.claim_id}",
        json_body={"delay": 0}), 404)


def subscription_get(w: World) -> None:
    assert_error(w.b.member.get(f"/v2/queues/{QUEUE}/subscriptions/{w.subscription_id}"),
                 404)
    assert w.b.member.get(f"/v2/queues/{QUEUE}/subscriptions").json()["subscriptions"] == []


def subscription_patch(w: World) -> None:
    assert_error(w.b.member.patch(f"/v2/queues/{QUEUE}/subscriptions/{w.subscription_id}",
                                  json_body={"ttl": 120}), 404)


def subscription_delete(w: World) -> None:
    assert w.b.member.delete(
        f"/v2/queues/{QUEUE}/subscriptions/{w.subscription_id}").status_code == 204


def subscription_confirm(w: World) -> None:
    assert_error(w.b.member.put(
        f"/v2/queues/{QUEUE}/subscriptions/{w.subscription_id}/confirm",
        json_body={"confirmed": True}), 404)


def subscription_test(w: World) -> None:
    assert_error(w.b.member.post(
        f"/v2/queues/{QUEUE}/subscriptions/{w.subscription_id}/test", json_body={}), 404)


def subscription_same_subscriber(w: World) -> None:
    made = _created(w.b.member.post(f"/v2/queues/{QUEUE}/subscriptions", json_body={
        "subscriber": "http://127.0.0.1:9/a"})).json()
    assert made["subscription_id"] != w.subscription_id


def delivery_history(w: World) -> None:
    for mid in (w.claimed_id, w.message_ids[2]):
        assert_error(w.b.member.get(f"/v2/queues/{QUEUE}/messages/{mid}/deliveries"), 404)


def topic_reads(w: World) -> None:
    b, t = w.b.member, f"/v2/topics/{TOPIC}"
    assert b.get("/v2/topics").json()["topics"] == []
    assert b.head(t).status_code == 404
    assert "note" not in b.get(t).json()
    assert b.get(f"{t}/stats").json()["messages"]["total"] == 0
    assert b.get(f"{t}/messages?echo=true").json()["messages"] == []
    assert_error(b.get(f"{t}/messages/{w.topic_message_id}"), 404)


def topic_writes(w: World) -> None:
    b, t = w.b.member, f"/v2/topics/{TOPIC}"
    assert_error(b.patch(t, data='[{"op": "add", "path": "/metadata/note", "value": "b"}]',
                         headers={"Content-Type":
                                  "application/openstack-messaging-v2.0-json-patch"}), 404)
    assert b.delete(f"{t}/messages/{w.topic_message_id}").status_code == 204
    assert b.post(f"{t}/purge", json_body={"resource_types": ["messages", "subscriptions"]}
                  ).status_code == 204
    assert b.delete(t).status_code == 204


def topic_subscriptions(w: World) -> None:
    b, sub = w.b.member, f"/v2/topics/{TOPIC}/subscriptions/{w.topic_subscription_id}"
    assert b.get(f"/v2/topics/{TOPIC}/subscriptions").json()["subscriptions"] == []
    assert_error(b.get(sub), 404)
    assert_error(b.patch(sub, json_body={"ttl": 120}), 404)
    assert_error(b.put(f"{sub}/confirm", json_body={"confirmed": True}), 404)
    assert b.delete(sub).status_code == 204


def redrive(w: World) -> None:
    # A's redrive of its queue (nothing dead-lettered in it: it ends at once).
    started = w.a.member.post(f"/v2/queues/{QUEUE}/redrive", json_body={})
    assert started.status_code == 202, started.text
    assert_error(w.b.member.get(started.json()["href"]), 404)
    # B's queue of the same name is B's own: no 409 for A's task, nothing of A's moved.
    mine = w.b.member.post(f"/v2/queues/{QUEUE}/redrive", json_body={"destination": "x"})
    assert mine.status_code == 202 and mine.json()["total"] == 0, mine.text
    assert_error(w.a.member.get(mine.json()["href"]), 404)


CASES: dict[str, Callable[[World], None]] = {
    case.__name__.replace("_", "-"): case for case in (
        flavor_get, flavor_list, flavor_patch, flavor_put_same_name, flavor_delete,
        flavor_writes_need_admin, flavor_shares_a_pool,
        pool_calls_need_admin, pool_get, pool_list, pool_patch_flavor, pool_put_overwrite,
        pool_delete,
        queue_on_a_flavor, topic_on_a_flavor, queue_by_name, messages_by_id,
        claim_get, claim_renew, claim_release, claimed_message_delete, claimed_message_release,
        subscription_get, subscription_patch, subscription_delete, subscription_confirm,
        subscription_test, subscription_same_subscriber,
        delivery_history, topic_reads, topic_writes, topic_subscriptions, redrive,
    )
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_b_cannot_see_use_or_change_a(world: World, case: str) -> None:
    before = a_state(world)
    CASES[case](world)
    assert a_state(world) == before


def test_a_sees_and_uses_its_own(world: World) -> None:
    """The other side of the cases: A's member reads A's flavor, A's admin
    sees which of A's flavors a pool serves, and A's queue and topic are
    placed on it (the world's own assertions)."""
    state = a_state(world)
    for path in (f"/v2/queues/{QUEUE}", f"/v2/topics/{TOPIC}"):
        assert world.a.member.head(path).status_code == 204
    assert state["flavor"]["pool_list"] == sorted([world.pool, world.spare])
    assert [p["flavor"] for p in state["pools"]] == [FLAVOR, FLAVOR]
    assert state["metadata"]["_flavor"] == FLAVOR and state["in_pool"] == 3
    assert state["topic"]["_flavor"] == FLAVOR
