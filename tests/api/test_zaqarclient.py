"""python-zaqarclient (v2, noauth) against the embedded stack: the client's
own requests -- undashed Client-ID, X-Project-Id, HEAD for exists() (204 /
404, which Zaqar cannot answer), null
claim ttl/grace, repeated ids=, JSON-patch metadata -- must all work."""

from __future__ import annotations

import uuid

import pytest
from zaqarclient.queues.v2 import client as zclient

from tests.api.conftest import Stack


@pytest.fixture
def zaqar(stack: Stack) -> zclient.Client:
    project = f"zc-{uuid.uuid4().hex[:12]}"
    return zclient.Client(stack.base_url, version=2, conf={
        "auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}})


def test_client_flow(zaqar: zclient.Client) -> None:
    assert zaqar.ping() is True
    queue = zaqar.queue("orders", auto_create=False)
    assert queue.exists() is False  # HEAD /v2/queues/orders → 404
    queue.ensure_exists(force_create=True)
    assert queue.exists() is True  # → 204
    queue.post([{"body": {"a": 1}, "ttl": 600}, {"body": "x"}])
    assert [m.body for m in queue.messages(echo=True)] == [{"a": 1}, "x"]
    stats = queue.stats["messages"]  # clients read the edges' bodies
    assert (stats["oldest"]["body"], stats["newest"]["body"]) == ({"a": 1}, "x")
    assert stats["oldest"]["ttl"] == 600

    assert queue.metadata()["_default_message_ttl"] == 3600
    assert queue.metadata(new_meta={"k": 1})["k"] == 1
    assert queue.metadata(new_meta={"k": 2, "j": 3}) == {
        **queue.metadata(), "k": 2, "j": 3}

    claim = queue.claim()  # sends {"ttl": null, "grace": null}
    claimed = list(claim)
    assert [m.body for m in claimed] == [{"a": 1}, "x"]
    claim.update(ttl=200)
    assert claim.ttl == 200
    for message in claimed:
        message.delete()  # with ?claim_id= from the href
    assert queue.stats["messages"]["total"] == 0

    queue.post([{"body": 1}, {"body": 2}])
    ids = [m.id for m in queue.messages(echo=True)]
    assert sorted(m.body for m in queue.messages(*ids)) == [1, 2]
    queue.delete_messages(*ids)  # repeated ids= keys
    queue.post([{"body": 3}])
    assert [m.body for m in queue.pop(1)] == [3]

    queues, _ = zaqar.queues()
    assert [q.name for q in queues] == ["orders"]
    queue.delete()
    assert [q.name for q in zaqar.queues()[0]] == []
