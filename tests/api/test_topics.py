"""Topics (rest-v2.md §10): a namespace of queue-like resources beside queues,
with the topic routes' own shapes, and the optional messages/subscriptions
sub-resources behaving as the queue ones on the topic."""

from __future__ import annotations

from tests.api.conftest import Client, assert_error

PATCH = {"Content-Type": "application/openstack-messaging-v2.0-json-patch"}
TOPIC_DEFAULTS = {"_max_messages_post_size": 262144, "_default_message_ttl": 3600,
                  "_default_message_delay": 0}


def test_create_get_list_delete(api: Client) -> None:
    resp = api.put("/v2/topics/t1", json_body={"k": 1})
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/v2/topics/t1"
    assert resp.text == ""
    assert api.put("/v2/topics/t1", json_body={"k": 2}).status_code == 204
    assert api.get("/v2/topics/t1").json() == {"k": 1, **TOPIC_DEFAULTS}
    api.put("/v2/topics/t2")
    body = api.get("/v2/topics?detailed=true&with_count=true").json()
    assert [t["name"] for t in body["topics"]] == ["t1", "t2"]
    assert body["topics"][0]["href"] == "/v2/topics/t1"
    assert body["topics"][0]["metadata"] == {"k": 1, **TOPIC_DEFAULTS}
    assert "count" not in body
    assert body["links"][0]["href"].startswith("/v2/topics?")
    assert api.delete("/v2/topics/t1").status_code == 204
    assert [t["name"] for t in api.get("/v2/topics").json()["topics"]] == ["t2"]


def test_topics_and_queues_are_separate_namespaces(api: Client) -> None:
    api.put("/v2/topics/same", json_body={"kind": "topic"})
    api.put("/v2/queues/same", json_body={"kind": "queue"})
    assert api.get("/v2/topics/same").json()["kind"] == "topic"
    assert api.get("/v2/queues/same").json()["kind"] == "queue"
    assert [q["name"] for q in api.get("/v2/queues").json()["queues"]] == ["same"]
    api.delete("/v2/queues/same")
    assert api.get("/v2/topics/same").json()["kind"] == "topic"


def test_missing_topic_shows_defaults_and_empty_stats(api: Client) -> None:
    assert api.get("/v2/topics/nope").json() == TOPIC_DEFAULTS
    assert api.get("/v2/topics/nope/stats").json() == {
        "messages": {"claimed": 0, "free": 0, "total": 0}}
    assert api.get("/v2/topics").json() == {"topics": [], "links": []}


def test_patch(api: Client) -> None:
    api.put("/v2/topics/t1", json_body={"a": 1})
    resp = api.patch("/v2/topics/t1", headers=PATCH, json_body=[
        {"op": "replace", "path": "/metadata/a", "value": 2},
        {"op": "remove", "path": "/metadata/_default_message_ttl"}])
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"a": 2, **TOPIC_DEFAULTS}
    # Queue-only reserved keys are not reserved on topics.
    resp = api.patch("/v2/topics/t1", headers=PATCH, json_body=[
        {"op": "remove", "path": "/metadata/_max_claim_count"}])
    assert_error(resp, 409)
    resp = api.patch("/v2/topics/missing", headers=PATCH, json_body=[
        {"op": "add", "path": "/metadata/a", "value": 1}])
    assert_error(resp, 404, description="Topic missing does not exist")
    assert_error(api.patch("/v2/topics/t1", json_body=[]), 415)


def test_bad_topic_name(api: Client) -> None:
    assert_error(api.put("/v2/topics/b@d"), 400, "Invalid topic identification")
    assert_error(api.get(f"/v2/topics/{'x' * 65}/stats"), 400, "Invalid topic identification")


def test_limit_out_of_range(api: Client) -> None:
    assert_error(api.get("/v2/topics?limit=0"), 400)
    assert_error(api.get("/v2/topics?limit=21"), 400)


def test_messages_stats_and_purge(api: Client) -> None:
    api.put("/v2/topics/t1")
    resp = api.post("/v2/topics/t1/messages",
                    json_body={"messages": [{"body": {"href": "/v2/queues/t1"}}, {"body": 2}]})
    assert resp.status_code == 201, resp.text
    resources = resp.json()["resources"]
    assert all(r.startswith("/v2/topics/t1/messages/") for r in resources)
    assert resp.headers["Location"].startswith("/v2/topics/t1/messages?ids=")
    # The queue of the same name saw nothing.
    assert api.get("/v2/queues/t1/stats").json()["messages"]["total"] == 0
    stats = api.get("/v2/topics/t1/stats").json()["messages"]
    assert stats["total"] == 2 and set(stats) == {"total", "oldest", "newest"}
    assert api.get(stats["oldest"]["href"]).status_code == 200
    assert stats["oldest"]["body"] == {"href": "/v2/queues/t1"} and stats["newest"]["body"] == 2
    listing = api.get("/v2/topics/t1/messages?echo=true").json()
    # Links move to the topic path; message bodies are left alone.
    assert listing["messages"][0]["body"] == {"href": "/v2/queues/t1"}
    assert listing["messages"][0]["href"] == resources[0]
    assert listing["links"][0]["href"].startswith("/v2/topics/t1/messages?")
    assert api.post("/v2/topics/t1/purge", json_body={"resource_types": ["messages"]}
                    ).status_code == 204
    assert api.get("/v2/topics/t1/stats").json()["messages"]["total"] == 0


def test_subscriptions_on_a_topic(api: Client) -> None:
    resp = api.post("/v2/topics/t1/subscriptions",
                    json_body={"subscriber": "http://127.0.0.1:9/hook", "ttl": 600})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"] == "/v2/topics/t1/subscriptions"
    sid = resp.json()["subscription_id"]
    assert api.get(f"/v2/topics/t1/subscriptions/{sid}").json()["source"] == "t1"
    assert api.get("/v2/queues/t1/subscriptions").json()["subscriptions"] == []
    assert [s["id"] for s in api.get("/v2/topics/t1/subscriptions").json()["subscriptions"]
            ] == [sid]


def test_methods_not_allowed(api: Client) -> None:
    resp = api.request("POST", "/v2/topics/t1")
    assert resp.status_code == 405
    assert "GET" in resp.headers["Allow"]


def test_head_tells_whether_the_topic_exists(api: Client) -> None:
    # As for queues (docs/api-extensions.md): 204 existing, 404 missing.
    assert api.head("/v2/topics/h1").status_code == 404
    assert api.put("/v2/topics/h1").status_code in (201, 204)
    resp = api.head("/v2/topics/h1")
    assert resp.status_code == 204 and resp.content == b""
    assert api.head("/v2/queues/h1").status_code == 404  # a queue of that name: none
