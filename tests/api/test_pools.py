"""Pools and flavors over REST (rest-v2.md §7-8): gating by admin_mode and
pooling, the admin role, shapes and errors, and a flavored queue's messages
landing in the pool's database (a second SQLite file), not the main one."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Client, Stack, assert_error
from tests.webhook_receiver import WebhookReceiver

ADMIN = {"X-Roles": "admin"}


@pytest.fixture
def pooling(stack: Stack, api: Client) -> Client:
    stack.override("admin_mode", True)
    stack.override("pooling", True)
    return api


def messages_in(url: str, queue: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM messages WHERE queue = :q"),
                                    {"q": queue}).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("admin_mode,pooling", [(False, False), (True, False), (False, True)])
def test_routes_need_admin_mode_and_pooling(stack: Stack, api: Client, admin_mode: bool,
                                            pooling: bool) -> None:
    stack.override("admin_mode", admin_mode)
    stack.override("pooling", pooling)
    for path in ("/v2/pools", "/v2/pools/p", "/v2/flavors", "/v2/flavors/f"):
        assert_error(api.get(path, headers=ADMIN), 404, "404 Not Found")


def test_policy(pooling: Client) -> None:
    for method, path in (("GET", "/v2/pools"), ("GET", "/v2/pools/p"),
                         ("PUT", "/v2/pools/p"), ("DELETE", "/v2/pools/p"),
                         ("PUT", "/v2/flavors/f"), ("PATCH", "/v2/flavors/f"),
                         ("DELETE", "/v2/flavors/f")):
        assert_error(pooling.request(method, path, json_body={}), 403, "Not authorized")
    # Flavor reads are unprotected.
    assert pooling.get("/v2/flavors").status_code == 200
    assert_error(pooling.get("/v2/flavors/none"), 404)


def test_pool_and_flavor_lifecycle(stack: Stack, pooling: Client, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/pool-a.sqlite"
    resp = pooling.put("/v2/pools/pa", headers=ADMIN,
                       json_body={"uri": uri, "weight": 10, "options": {}})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"] == "/v2/pools/pa" and resp.text == ""
    listing = pooling.get("/v2/pools?detailed=true", headers=ADMIN)
    assert listing.headers["Content-Location"] == "/v2/pools?detailed=true"
    assert listing.json()["pools"] == [{"name": "pa", "uri": uri, "weight": 10, "flavor": None,
                                        "options": {}, "href": "/v2/pools/pa"}]
    assert listing.json()["links"][0]["href"].startswith("/v2/pools?")
    resp = pooling.put("/v2/flavors/gold", headers=ADMIN, json_body={"pool_list": ["pa"]})
    assert resp.status_code == 201, resp.text
    flavor = pooling.get("/v2/flavors/gold").json()
    assert flavor["pool_list"] == ["pa"] and flavor["href"] == "/v2/flavors/gold"
    assert "FIFO" in flavor["capabilities"]
    assert pooling.get("/v2/pools/pa", headers=ADMIN).json()["flavor"] == "gold"
    assert [f["name"] for f in pooling.get("/v2/flavors").json()["flavors"]] == ["gold"]

    # A flavored queue's messages go to the pool's database.
    assert pooling.put("/v2/queues/gq", json_body={"_flavor": "gold"}).status_code == 201
    pooling.post_messages("gq", 3)
    assert messages_in(uri, "gq") == 3
    assert messages_in(stack.conf.storage.connection, "gq") == 0
    assert len(pooling.get("/v2/queues/gq/messages?echo=true").json()["messages"]) == 3
    assert [q["name"] for q in pooling.get("/v2/queues").json()["queues"]] == ["gq"]

    patched = pooling.patch("/v2/pools/pa", headers=ADMIN, json_body={"weight": 5})
    assert patched.status_code == 200 and patched.json()["weight"] == 5
    assert_error(pooling.delete("/v2/pools/pa", headers=ADMIN), 403)  # last pool of gold
    assert pooling.delete("/v2/flavors/gold", headers=ADMIN).status_code == 204
    assert_error(pooling.delete("/v2/pools/pa", headers=ADMIN), 409)  # still holds gq
    pooling.delete("/v2/queues/gq")
    assert pooling.delete("/v2/pools/pa", headers=ADMIN).status_code == 204
    assert_error(pooling.get("/v2/pools/pa", headers=ADMIN), 404)


@pytest.mark.parametrize("body", [
    {"weight": 1}, {"uri": "sqlite:///x.sqlite"}, {"uri": "sqlite:///x.sqlite", "weight": -1},
    {"uri": "sqlite:///x.sqlite", "weight": "1"}, {"uri": "not a url", "weight": 1},
    {"uri": "sqlite:///x.sqlite", "weight": 1, "colour": "red"},
    {"uri": "sqlite:///x.sqlite", "weight": 1, "options": []},
    {"uri": "postgresql+psycopg://nobody@127.0.0.1:1/x", "weight": 1},
])
def test_pool_put_refusals(pooling: Client, body: dict) -> None:
    assert_error(pooling.put("/v2/pools/bad", headers=ADMIN, json_body=body), 400)


def test_flavor_refusals(pooling: Client) -> None:
    for body in ({}, {"pool_list": []}, {"pool_list": ["nope"]},
                 {"pool_list": ["x"], "extra": 1}):
        assert_error(pooling.put("/v2/flavors/f", headers=ADMIN, json_body=body), 400)
    assert_error(pooling.patch("/v2/flavors/none", headers=ADMIN,
                               json_body={"pool_list": ["x"]}), 404)
    assert_error(pooling.patch("/v2/flavors/none", headers=ADMIN, json_body={}), 400)
    assert_error(pooling.get("/v2/pools?limit=0", headers=ADMIN), 400)
    assert_error(pooling.patch("/v2/pools/none", headers=ADMIN, json_body={}), 400)
    assert_error(pooling.patch("/v2/pools/none", headers=ADMIN, json_body={"weight": 1}), 404)


def test_queue_with_unknown_flavor_is_400(pooling: Client) -> None:
    assert_error(pooling.put("/v2/queues/q", json_body={"_flavor": "nope"}), 400,
                 description="Flavor nope does not exist")


def _flavored_queue(pooling: Client, tmp_path: Path) -> tuple[str, str]:
    """A pool + flavor of their own and a queue placed on them: (queue, pool uri)."""
    suffix = uuid.uuid4().hex[:8]
    uri = f"sqlite:///{tmp_path}/pool-{suffix}.sqlite"
    assert pooling.put(f"/v2/pools/p{suffix}", headers=ADMIN,
                       json_body={"uri": uri, "weight": 1, "options": {}}).status_code == 201
    assert pooling.put(f"/v2/flavors/f{suffix}", headers=ADMIN,
                       json_body={"pool_list": [f"p{suffix}"]}).status_code == 201
    queue = f"q{suffix}"
    assert pooling.put(f"/v2/queues/{queue}",
                       json_body={"_flavor": f"f{suffix}"}).status_code == 201
    return queue, uri


def test_flavored_queue_notifications_are_delivered(pooling: Client, tmp_path: Path,
                                                    receiver: WebhookReceiver) -> None:
    # The outbox rows of a pool's queue live in the pool's database: the
    # worker must run a dispatcher there too.
    queue, _ = _flavored_queue(pooling, tmp_path)
    assert pooling.post(f"/v2/queues/{queue}/subscriptions",
                        json_body={"subscriber": f"{receiver.url}/ok"}).status_code == 201
    pooling.post_messages(queue, 1)
    deadline = time.monotonic() + 10
    while not receiver.bodies and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.bodies and receiver.bodies[0][1]["queue_name"] == queue


def test_flavored_queue_is_garbage_collected(stack: Stack, pooling: Client, tmp_path: Path,
                                             clock: Any) -> None:
    queue, uri = _flavored_queue(pooling, tmp_path)
    pooling.post_messages(queue, 2, ttl=60)
    assert messages_in(uri, queue) == 2
    clock.advance(120)
    stack.worker.collect_garbage()
    assert messages_in(uri, queue) == 0
