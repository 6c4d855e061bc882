"""Websocket: ordered message groups and dead-letter redrive (issue 23,
features 2 and 3) through the gateway, over JSON frames."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.common.context import RequestContext
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, ws_url


@pytest.fixture
def client(gateway, project: str) -> Iterator[WSClient]:
    c = WSClient(ws_url(gateway), project)
    yield c
    c.close()


def _claim(client: WSClient, queue: str, limit: int) -> list[dict]:
    status, body = client.status_body("claim_create", {"queue_name": queue, "limit": limit,
                                                       "ttl": 60, "grace": 60})
    assert status in (201, 204), body
    return body["messages"] if status == 201 else []


def test_the_issue_example_over_the_websocket(client: WSClient) -> None:
    status, body = client.status_body("message_post", {"queue_name": "fifo", "messages": [
        {"body": "g1-a", "group": "g1"}, {"body": "g1-b", "group": "g1"},
        {"body": "g2-a", "group": "g2"}]})
    assert status == 201, body
    first = _claim(client, "fifo", 1)
    assert [(m["body"], m["group"]) for m in first] == [("g1-a", "g1")]
    assert [m["body"] for m in _claim(client, "fifo", 10)] == ["g2-a"]
    status, _ = client.status_body("message_delete", {
        "queue_name": "fifo", "message_id": first[0]["id"], "claim_id": first[0]["claim_id"]})
    assert status == 204
    assert [m["body"] for m in _claim(client, "fifo", 10)] == ["g1-b"]
    status, got = client.status_body("message_get", {"queue_name": "fifo",
                                                     "message_id": body["message_ids"][2]})
    assert (status, got["messages"]["group"]) == (200, "g2")


def test_a_bad_group_is_400_over_the_websocket(client: WSClient) -> None:
    status, body = client.status_body("message_post", {"queue_name": "fifo", "messages": [
        {"body": 1, "group": "x" * 129}]})
    assert status == 400
    assert "1 to 128" in body["exception"]


def _dead_letter_one(client: WSClient, queue: str) -> None:
    """Post "x" to ``queue`` (``_max_claim_count`` 1) and claim it twice: the
    second claim dead-letters it."""
    client.status_body("message_post", {"queue_name": queue, "messages": [{"body": "x"}]})
    claimed = _claim(client, queue, 5)
    client.status_body("claim_delete", {"queue_name": queue,
                                        "claim_id": claimed[0]["claim_id"]})
    assert _claim(client, queue, 5) == []  # dead-lettered


def test_queue_redrive_over_the_websocket(client: WSClient) -> None:
    from herald.testing.polling import wait_until

    status, _ = client.status_body("queue_create", {"queue_name": "jobs", "metadata": {
        "_max_claim_count": 1, "_dead_letter_queue": "jobs-dlq"}})
    assert status == 201
    _dead_letter_one(client, "jobs")
    status, task = client.status_body("queue_redrive", {"queue_name": "jobs-dlq"})
    assert status == 202, task
    assert (task["status"], task["moved"], task["total"]) == ("running", 0, 1)
    status, refused = client.status_body("queue_redrive", {"queue_name": "jobs-dlq",
                                                           "max_per_second": 0})
    assert status == 400 and "at least 1" in refused["exception"]

    def done() -> bool:
        status, body = client.status_body("queue_redrive_get", {"queue_name": "jobs-dlq",
                                                                "redrive_id": task["id"]})
        return status == 200 and body["status"] == "done"

    wait_until(done, timeout=20)
    assert [m["body"] for m in _claim(client, "jobs", 5)] == ["x"]


def test_a_redrive_to_a_queue_on_another_pool_is_409_over_the_websocket(
        harness: GatewayHarness, client: WSClient, project: str, tmp_path: Path) -> None:
    harness.override("pooling", True)
    try:
        admin = RequestContext(project_id=project, roles=("admin",))
        pools = {side: f"{side}-{uuid.uuid4().hex[:8]}" for side in ("a", "b")}
        for side, pool in pools.items():
            harness.run(harness.storage.pool_put(admin, pool, f"sqlite:///{tmp_path}/{pool}.db",
                                                 10, None, {}))
            harness.run(harness.storage.flavor_put(admin, f"on-{side}", [pool], {}))
        for queue, metadata in (("jobs-dlq", {"_flavor": "on-a"}),
                                ("jobs", {"_flavor": "on-a", "_max_claim_count": 1,
                                          "_dead_letter_queue": "jobs-dlq"}),
                                ("elsewhere", {"_flavor": "on-b"})):
            status, _ = client.status_body("queue_create", {"queue_name": queue,
                                                            "metadata": metadata})
            assert status == 201
        _dead_letter_one(client, "jobs")

        status, body = client.status_body("queue_redrive", {"queue_name": "jobs-dlq",
                                                            "destination": "elsewhere"})
        # Zaqar's websocket error body: the description as "exception".
        assert (status, body) == (409, {
            "exception": f"Queue elsewhere lives on pool {pools['b']} and queue jobs-dlq on "
                         f"pool {pools['a']}: a redrive moves messages only between queues "
                         "of the same pool.",
            "error": None})
        status, listed = client.status_body("message_list", {"queue_name": "jobs-dlq",
                                                             "echo": True})
        assert (status, [m["body"] for m in listed["messages"]]) == (200, ["x"])
    finally:
        harness.reset_overrides()
