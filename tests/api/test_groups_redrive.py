"""REST: ordered message groups and dead-letter redrive (issue 23, features 2
and 3; docs/message-groups.md, docs/dead-letter-redrive.md) on the embedded
stack."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.testing.polling import wait_until

from .conftest import Client, Stack, assert_error


def _post(api: Client, queue: str, messages: list[dict[str, Any]]) -> list[str]:
    resp = api.post(f"/v2/queues/{queue}/messages", json_body={"messages": messages})
    assert resp.status_code == 201, resp.text
    return [href.rsplit("/", 1)[1] for href in resp.json()["resources"]]


def _claim(api: Client, queue: str, limit: int) -> dict[str, Any]:
    resp = api.post(f"/v2/queues/{queue}/claims?limit={limit}",
                    json_body={"ttl": 60, "grace": 60})
    if resp.status_code == 204:
        return {"messages": []}
    assert resp.status_code == 201, resp.text
    return resp.json()


# -- message groups ----------------------------------------------------------------


def test_the_issue_example_over_rest(api: Client) -> None:
    ids = _post(api, "fifo", [{"body": "g1-a", "group": "g1"}, {"body": "g1-b", "group": "g1"},
                              {"body": "g2-a", "group": "g2"}])
    first = _claim(api, "fifo", 1)["messages"]
    assert [(m["body"], m["group"]) for m in first] == [("g1-a", "g1")]
    assert [m["body"] for m in _claim(api, "fifo", 10)["messages"]] == ["g2-a"]
    assert _claim(api, "fifo", 10)["messages"] == []
    assert api.delete(first[0]["href"]).status_code == 204
    assert [m["body"] for m in _claim(api, "fifo", 10)["messages"]] == ["g1-b"]
    # Listing and getting show the group.
    listed = api.get("/v2/queues/fifo/messages?echo=true&include_claimed=true").json()
    assert [(m["body"], m["group"]) for m in listed["messages"]] == [("g1-b", "g1"),
                                                                     ("g2-a", "g2")]
    assert api.get(f"/v2/queues/fifo/messages/{ids[2]}").json()["group"] == "g2"
    # A message without a group has no "group" key at all.
    plain = _post(api, "fifo", [{"body": "plain"}])[0]
    assert "group" not in api.get(f"/v2/queues/fifo/messages/{plain}").json()


@pytest.mark.parametrize("group, status, words", [
    ("", 400, "1 to 128"), ("x" * 129, 400, "1 to 128"), ("a\nb", 400, "printable"),
    (7, 400, "must be a string"), (None, 400, "must be a string")])
def test_a_bad_group_is_400(api: Client, group: Any, status: int, words: str) -> None:
    resp = api.post("/v2/queues/fifo/messages",
                    json_body={"messages": [{"body": 1, "group": group}]})
    assert_error(resp, status)
    assert words in resp.json()["description"]


def test_a_group_of_128_characters_is_accepted(api: Client) -> None:
    mid = _post(api, "fifo", [{"body": 1, "group": "é" * 128}])[0]
    assert api.get(f"/v2/queues/fifo/messages/{mid}").json()["group"] == "é" * 128


# -- dead-letter redrive -----------------------------------------------------------


def _dead_letter(api: Client, queue: str, bodies: list[Any],
                 metadata: dict[str, Any] | None = None) -> None:
    assert api.put(f"/v2/queues/{queue}", json_body={
        "_max_claim_count": 1, "_dead_letter_queue": f"{queue}-dlq",
        **(metadata or {})}).status_code == 201
    _post(api, queue, [{"body": body} for body in bodies])
    claim = api.post(f"/v2/queues/{queue}/claims?limit=20", json_body={"ttl": 60})
    assert api.delete(claim.headers["Location"]).status_code == 204
    # Claimed once already: this claim dead-letters them instead.
    assert api.post(f"/v2/queues/{queue}/claims?limit=20",
                    json_body={"ttl": 60}).status_code == 204


def test_redrive_over_rest(api: Client) -> None:
    _dead_letter(api, "orders", ["a", "b"])
    started = api.post("/v2/queues/orders-dlq/redrive", json_body={})
    assert started.status_code == 202, started.text
    task = started.json()
    assert {key: task[key] for key in ("status", "moved", "total")} == {
        "status": "running", "moved": 0, "total": 2}
    assert task["href"] == f"/v2/queues/orders-dlq/redrive/{task['id']}"
    assert started.headers["Location"] == task["href"]
    wait_until(lambda: api.get(task["href"]).json()["status"] == "done", timeout=20)
    assert api.get(task["href"]).json()["moved"] == 2
    back = api.get("/v2/queues/orders/messages?echo=true").json()["messages"]
    assert [m["body"] for m in back] == ["a", "b"]
    # Once it is done, another redrive of the queue may start.
    again = api.post("/v2/queues/orders-dlq/redrive", json_body={"destination": "x"})
    assert again.status_code == 202
    assert api.get(again.json()["href"]).status_code == 200


def test_a_second_redrive_while_one_runs_is_409(api: Client) -> None:
    _dead_letter(api, "slowq", [1, 2, 3, 4, 5])
    first = api.post("/v2/queues/slowq-dlq/redrive", json_body={"max_per_second": 1})
    assert first.status_code == 202
    second = api.post("/v2/queues/slowq-dlq/redrive", json_body={})
    assert_error(second, 409)
    assert second.json()["description"] == "A redrive of queue slowq-dlq is already running."
    assert_error(api.get("/v2/queues/slowq-dlq/redrive/" + "0" * 32), 404)


@pytest.mark.parametrize("body, words", [
    ({"destination": "q-dlq"}, "another queue"), ({"destination": "bad name"}, "Bad destination"),
    ({"max_per_second": 0}, "at least 1"), ({"limit": "ten"}, "must be a int"),
    ({"speed": 3}, "Unknown redrive option 'speed'"), ([], "Document type")])
def test_a_bad_redrive_is_400(api: Client, body: Any, words: str) -> None:
    resp = api.post("/v2/queues/q-dlq/redrive", json_body=body)
    assert_error(resp, 400)
    assert words in resp.json()["description"]


def test_a_redrive_across_pools_is_409_or_leaves_the_messages_reported(
        stack: Stack, api: Client, tmp_path: Path) -> None:
    """With pooling, messages move only between queues of the DLQ's pool
    (docs/dead-letter-redrive.md): an explicit destination elsewhere is
    refused, a source queue elsewhere keeps its messages in the DLQ."""
    stack.override("admin_mode", True)
    stack.override("pooling", True)
    admin = {"X-Roles": "admin"}
    pools = {side: f"{side}-{uuid.uuid4().hex[:8]}" for side in ("a", "b")}
    for side, pool in pools.items():
        assert api.put(f"/v2/pools/{pool}", headers=admin, json_body={
            "uri": f"sqlite:///{tmp_path}/{pool}.sqlite", "weight": 10}).status_code == 201
        assert api.put(f"/v2/flavors/on-{side}", headers=admin,
                       json_body={"pool_list": [pool]}).status_code == 201
    on_a = {"_flavor": "on-a"}
    assert api.put("/v2/queues/orders-dlq", json_body=on_a).status_code == 201
    _dead_letter(api, "orders", ["a", "b"], on_a)
    assert api.put("/v2/queues/elsewhere", json_body={"_flavor": "on-b"}).status_code == 201

    refused = api.post("/v2/queues/orders-dlq/redrive", json_body={"destination": "elsewhere"})
    assert_error(refused, 409, "Resource conflict",
                 f"Queue elsewhere lives on pool {pools['b']} and queue orders-dlq on pool "
                 f"{pools['a']}: a redrive moves messages only between queues of the same "
                 "pool.")
    in_dlq = api.get("/v2/queues/orders-dlq/messages?echo=true").json()["messages"]
    assert [m["body"] for m in in_dlq] == ["a", "b"]

    # The source queue is re-created on the other pool: its messages stay, reported.
    assert api.delete("/v2/queues/orders").status_code == 204
    assert api.put("/v2/queues/orders", json_body={"_flavor": "on-b"}).status_code == 201
    started = api.post("/v2/queues/orders-dlq/redrive", json_body={})
    assert started.status_code == 202, started.text
    task = started.json()
    assert {key: task[key] for key in ("total", "skipped", "skipped_queues")} == {
        "total": 0, "skipped": 2, "skipped_queues": ["orders"]}
    wait_until(lambda: api.get(task["href"]).json()["status"] == "done", timeout=20)
    assert api.get(task["href"]).json()["skipped"] == 2
    in_dlq = api.get("/v2/queues/orders-dlq/messages?echo=true").json()["messages"]
    assert [m["body"] for m in in_dlq] == ["a", "b"]
