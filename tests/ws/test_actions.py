"""Every websocket action of websocket.md §5 (queues, messages, claims) and
the framework errors of §1-4, in process, over JSON and msgpack frames."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.ws.client import WSClient
from tests.ws.conftest import ws_url


@pytest.fixture(params=["json", "msgpack"])
def client(request: pytest.FixtureRequest, gateway, project: str) -> Iterator[WSClient]:
    c = WSClient(ws_url(gateway), project, binary=request.param == "msgpack")
    yield c
    c.close()


def post(client: WSClient, queue: str, *bodies, ttl: int | None = None) -> list[str]:
    messages = [{"body": b} if ttl is None else {"body": b, "ttl": ttl} for b in bodies]
    status, body = client.status_body("message_post", {"queue_name": queue, "messages": messages})
    assert status == 201, body
    return body["message_ids"]


# -- framework: decoding, envelope, schema, authentication -----------------

NULL_REQUEST = {"action": None, "body": {}, "headers": {}, "api": "v2"}


def test_undecodable_text_frame(gateway, project: str) -> None:
    with WSClient(ws_url(gateway), project) as c:
        c.ws.send("\ufeff")
        reply, binary = c.recv()
    assert not binary
    assert reply["headers"] == {"status": 400}
    assert reply["request"] == NULL_REQUEST
    assert reply["body"]["error"].startswith("Can't decode text (JSON) request. JSONDecodeError: ")


def test_undecodable_binary_frame(gateway, project: str) -> None:
    with WSClient(ws_url(gateway), project) as c:
        c.ws.send_binary(b"123")
        reply, binary = c.recv()
    assert binary
    assert reply["headers"] == {"status": 400}
    assert reply["request"] == NULL_REQUEST
    assert reply["body"]["error"].startswith("Can't decode binary (MessagePack) request. ")


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("payload", [123, "a string", [1, 2]])
def test_non_object_payload(gateway, project: str, payload, binary: bool) -> None:
    with WSClient(ws_url(gateway), project) as c:
        c.send_raw(payload, binary)
        reply, was_binary = c.recv()
    assert was_binary == binary
    assert reply == {"request": NULL_REQUEST, "headers": {"status": 400},
                     "body": {"error": "Unexpected body type. Expected dict or dict like."}}


def test_whole_envelope_of_an_empty_queue_list(client: WSClient) -> None:
    reply = client.call("queue_list")
    assert reply == {"body": {"queues": []}, "headers": {"status": 200},
                     "request": {"action": "queue_list", "body": {}, "api": "v2",
                                 "headers": client.headers}}


def test_unknown_and_missing_action(client: WSClient) -> None:
    assert client.status_body("queue_glorify", {}) == (
        400, {"error": "queue_glorify is not a valid action"})
    client.send_raw({"headers": client.headers, "body": {}}, client.binary)
    reply, _ = client.recv()
    assert reply["headers"]["status"] == 400
    assert reply["body"] == {"error": "None is not a valid action"}
    assert reply["request"] == {"action": None, "body": {}, "headers": client.headers,
                                "api": "v2"}


@pytest.mark.parametrize("action", ["pool_list", "flavor_get", "get_home_doc", "ping_node",
                                    "check_node_health"])
def test_schema_only_actions_are_not_valid_actions(client: WSClient, action: str) -> None:
    body = {"pool_name": "p", "flavor_name": "f"}
    assert client.status_body(action, body) == (400, {"error": f"{action} is not a valid action"})


def test_subscription_actions_are_served(client: WSClient) -> None:
    # Behaviour in detail: tests/ws/test_subscriptions.py.
    status, body = client.status_body("subscription_list", {"queue_name": "q"})
    assert (status, body) == (200, {"subscriptions": []})


SCHEMA_FAILED = (400, {"error": "Schema validation failed."})


@pytest.mark.parametrize("action,body", [
    ("queue_create", None),                       # body required
    ("queue_create", "fail"),                     # body not an object
    ("queue_create", "["),
    ("queue_create", {}),                         # queue_name required
    ("queue_create", {"queue_name": 5}),
    ("queue_create", {"queue_name": "q", "metadata": []}),
    ("queue_list", {"limit": "5"}),
    ("queue_list", {"limit": 5.0}),
    ("queue_list", {"detailed": "yes"}),
    ("message_post", {"queue_name": "q"}),
    ("message_post", {"queue_name": "q", "messages": None}),
    ("message_post", {"queue_name": "q", "messages": {"body": 1}}),
    ("message_list", {"queue_name": "q", "echo": 1}),
    ("message_get", {"queue_name": "q"}),
    ("message_get_many", {"queue_name": "q", "message_ids": "a,b"}),
    ("message_delete_many", {"queue_name": "q", "pop": True}),
    ("claim_create", {"queue_name": "q", "ttl": None}),
    ("claim_update", {"queue_name": "q"}),
    ("claim_delete", {"queue_name": "q", "claim_id": 3}),
])
def test_schema_violations(client: WSClient, action: str, body) -> None:
    if body is None:
        client.send(action)
        reply, _ = client.recv()
        assert (reply["headers"]["status"], reply["body"]) == SCHEMA_FAILED
    else:
        assert client.status_body(action, body) == SCHEMA_FAILED


def test_headers_are_required_and_must_be_strings(client: WSClient) -> None:
    assert client.status_body("queue_list", headers=None) == SCHEMA_FAILED
    assert client.status_body("queue_list", headers={"Client-ID": str(uuid.uuid4())}) \
        == SCHEMA_FAILED
    assert client.status_body("queue_list", headers={**client.headers, "X-Project-ID": 7}) \
        == SCHEMA_FAILED
    # Other headers may be anything.
    status, _ = client.status_body("queue_list", headers={**client.headers, "X-Other": 7})
    assert status == 200


def test_authenticate_without_auth_strategy_is_accepted(client: WSClient) -> None:
    headers = {"X-Auth-Token": "t", "X-Project-ID": client.headers["X-Project-ID"],
               "Client-ID": client.headers["Client-ID"]}
    reply = client.call("authenticate", headers=headers)
    assert reply == {"request": {"action": "authenticate", "body": {}, "headers": {},
                                 "api": "v2"},
                     "headers": {"status": 200}, "body": {"message": "Authentified."}}
    # The token header is required by the schema, before any auth logic.
    assert client.status_body("authenticate", headers=client.headers) == SCHEMA_FAILED


# -- queues ------------------------------------------------------------------

def test_queue_create_get_list_delete(client: WSClient) -> None:
    meta = {"color": "blue", "_default_message_ttl": 120}
    assert client.status_body("queue_create", {"queue_name": "q1", "metadata": meta}) == (
        201, "Queue q1 created.")
    # Existing queue: 204, same text, metadata not replaced.
    assert client.status_body("queue_create", {"queue_name": "q1", "metadata": {"x": 1}}) == (
        204, "Queue q1 created.")
    assert client.status_body("queue_get", {"queue_name": "q1"}) == (200, meta)
    # A missing queue reads as empty metadata, 200 (no reserved defaults).
    assert client.status_body("queue_get", {"queue_name": "nope"}) == (200, {})
    assert client.status_body("queue_create", {"queue_name": "q2"})[0] == 201
    assert client.status_body("queue_list") == (200, {"queues": [{"name": "q1"},
                                                                 {"name": "q2"}]})
    assert client.status_body("queue_list", {"detailed": True}) == (
        200, {"queues": [{"name": "q1", "metadata": meta}, {"name": "q2", "metadata": {}}]})
    assert client.status_body("queue_list", {"marker": "q1", "limit": 1}) == (
        200, {"queues": [{"name": "q2"}]})
    assert client.status_body("queue_delete", {"queue_name": "q1"}) == (204, "Queue q1 removed.")
    assert client.status_body("queue_delete", {"queue_name": "q1"}) == (204, "Queue q1 removed.")
    assert client.status_body("queue_list") == (200, {"queues": [{"name": "q2"}]})


@pytest.mark.parametrize("limit", [0, -1, 21])
def test_queue_list_limit_out_of_range(client: WSClient, limit: int) -> None:
    assert client.status_body("queue_list", {"limit": limit}) == (
        400, {"exception": "Limit must be at least 1 and no greater than 20.", "error": None})


@pytest.mark.parametrize("name,text", [
    ("a" * 65, "Queue names may not be more than 64 characters long."),
    ("bad name", "Queue names may only contain ASCII letters, digits, underscores, and dashes."),
    ("ünïcode", "Queue names may only contain ASCII letters, digits, underscores, and dashes."),
])
def test_queue_create_bad_names(client: WSClient, name: str, text: str) -> None:
    assert client.status_body("queue_create", {"queue_name": name}) == (
        400, {"exception": text, "error": None})


def test_queue_create_bad_metadata(client: WSClient) -> None:
    status, body = client.status_body(
        "queue_create", {"queue_name": "q", "metadata": {"big": "x" * 70000}})
    assert (status, body) == (
        400, {"exception": "Queue metadata is too large. Max size: 65536", "error": None})
    status, body = client.status_body(
        "queue_create", {"queue_name": "q", "metadata": {"_default_message_ttl": "123"}})
    assert (status, body) == (
        400, {"exception": "_default_message_ttl must be integer.", "error": None})
    status, body = client.status_body(
        "queue_create", {"queue_name": "q", "metadata": {"_max_messages_post_size": 0}})
    assert status == 400 and "_max_messages_post_size can not exceed" in body["exception"]
    assert client.status_body("queue_list") == (200, {"queues": []})


def test_queue_stats(client: WSClient) -> None:
    assert client.status_body("queue_get_stats", {"queue_name": "missing"}) == (
        404, {"messages": {"claimed": 0, "free": 0, "total": 0}})
    client.status_body("queue_create", {"queue_name": "s"})
    assert client.status_body("queue_get_stats", {"queue_name": "s"}) == (
        200, {"messages": {"claimed": 0, "free": 0, "total": 0}})
    ids = post(client, "s", 1, 2, 3)
    client.status_body("claim_create", {"queue_name": "s", "limit": 1})
    status, body = client.status_body("queue_get_stats", {"queue_name": "s"})
    assert status == 200
    stats = body["messages"]
    assert (stats["free"], stats["claimed"], stats["total"]) == (2, 1, 3)
    # Zaqar's stored shape over the websocket: the id stays, the body is there.
    assert list(stats["oldest"]) == ["id", "age", "ttl", "body", "claim_id", "claim_count",
                                     "created"]
    assert stats["oldest"]["id"] == ids[0] and stats["newest"]["id"] == ids[2]
    assert stats["oldest"]["body"] == 1 and stats["newest"]["body"] == 3
    assert stats["oldest"]["claim_id"] and stats["newest"]["claim_count"] == 0
    assert stats["newest"]["claim_id"] is None


def test_queue_purge(client: WSClient) -> None:
    post(client, "pq", 1, 2)
    assert client.status_body("queue_purge", {"queue_name": "pq",
                                              "resource_types": ["messages"]}) == (204, {})
    assert client.status_body("message_list", {"queue_name": "pq", "echo": True}) == (
        200, {"messages": []})
    post(client, "pq", 3)
    assert client.status_body("queue_purge", {"queue_name": "pq"}) == (204, {})
    assert client.status_body("message_list", {"queue_name": "pq", "echo": True}) == (
        200, {"messages": []})
    status, body = client.status_body("queue_purge", {"queue_name": "pq",
                                                      "resource_types": ["bogus"]})
    assert status == 400 and body["exception"].startswith("Resource types must be a sub set")


# -- messages ----------------------------------------------------------------

def test_message_post_list_get(client: WSClient) -> None:
    ids = post(client, "m", {"k": "v"}, None, [1, "two"], ttl=120)
    status, body = client.status_body("message_list", {"queue_name": "m", "echo": True})
    assert status == 200
    assert [m["id"] for m in body["messages"]] == ids
    first = body["messages"][0]
    assert set(first) == {"id", "claim_id", "ttl", "age", "body"}
    assert (first["body"], first["ttl"], first["claim_id"]) == ({"k": "v"}, 120, None)
    assert [m["body"] for m in body["messages"]] == [{"k": "v"}, None, [1, "two"]]
    # echo defaults to false: the poster does not see its own messages.
    assert client.status_body("message_list", {"queue_name": "m"}) == (200, {"messages": []})
    assert client.status_body("message_list", {"queue_name": "m", "echo": True, "limit": 1})[1] \
        == {"messages": body["messages"][:1]}
    assert client.status_body("message_list", {"queue_name": "nope", "echo": True}) == (
        200, {"messages": []})
    # One object under the plural key.
    assert client.status_body("message_get", {"queue_name": "m", "message_id": ids[1]}) == (
        200, {"messages": body["messages"][1]})
    status, body2 = client.status_body("message_get_many",
                                       {"queue_name": "m", "message_ids": [ids[2], "x" * 32]})
    assert (status, body2) == (200, {"messages": [body["messages"][2]]})
    assert client.status_body("message_get_many", {"queue_name": "m",
                                                   "message_ids": ["nope"]}) == (
        200, {"messages": []})


def test_message_post_defaults_ttl_and_creates_queue(client: WSClient) -> None:
    post(client, "auto", "x")
    status, body = client.status_body("message_list", {"queue_name": "auto", "echo": True})
    assert body["messages"][0]["ttl"] == 3600
    assert client.status_body("queue_list")[1] == {"queues": [{"name": "auto"}]}


def test_message_get_missing(client: WSClient) -> None:
    status, body = client.status_body("message_get", {"queue_name": "m",
                                                      "message_id": "0" * 32})
    assert status == 404 and body["error"] is None
    assert "does not exist" in body["exception"]


@pytest.mark.parametrize("messages,text", [
    ([{"ttl": 100}], 'Bad request. Missing "body" field.'),
    ([{"body": 1, "ttl": "100"}], 'Bad request. The value of the "ttl" field must be a int.'),
    ([], "No messages to enqueu."),
    ([{"body": 1, "ttl": 59}], "The TTL for a message may not exceed 1209600 seconds, and "
                               "must be at least 60 seconds long."),
    ([{"body": "x" * 262144}], "Message collection size is too large. Max size 262144"),
])
def test_message_post_invalid(client: WSClient, messages, text: str) -> None:
    assert client.status_body("message_post", {"queue_name": "m", "messages": messages}) == (
        400, {"exception": text, "error": None})


def test_message_post_bad_queue_name_and_client_id(client: WSClient) -> None:
    status, body = client.status_body("message_post", {"queue_name": "a b",
                                                       "messages": [{"body": 1}]})
    assert status == 400 and body["exception"].startswith("Queue names may only contain")
    headers = {**client.headers, "Client-ID": "not-a-uuid"}
    assert client.status_body("message_post", {"queue_name": "m", "messages": [{"body": 1}]},
                              headers=headers) == (
        400, {"exception": "Malformed hexadecimal UUID.", "error": None})
    assert client.status_body("message_list", {"queue_name": "m"}, headers=headers) == (
        400, {"exception": "Malformed hexadecimal UUID.", "error": None})


def test_message_post_ignores_delay(client: WSClient) -> None:
    client.status_body("queue_create", {"queue_name": "d",
                                        "metadata": {"_default_message_delay": 300}})
    post(client, "d", 1)
    client.status_body("message_post", {"queue_name": "d",
                                        "messages": [{"body": 2, "delay": 600}]})
    status, body = client.status_body("claim_create", {"queue_name": "d"})
    assert status == 201 and [m["body"] for m in body["messages"]] == [1, 2]


def test_message_list_limits(client: WSClient) -> None:
    for limit in (0, 21):
        assert client.status_body("message_list", {"queue_name": "m", "limit": limit}) == (
            400, {"exception": "Limit must be at least 1 and may not be greater than 20.",
                  "error": None})
    status, body = client.status_body("message_get_many",
                                      {"queue_name": "m", "message_ids": ["a"] * 21})
    assert status == 400


def test_message_delete_and_claim_rules(client: WSClient) -> None:
    ids = post(client, "del", "a", "b", "c")
    # Missing message: still 204.
    assert client.status_body("message_delete", {"queue_name": "del",
                                                 "message_id": "0" * 32}) == (204, {})
    assert client.status_body("message_delete", {"queue_name": "del",
                                                 "message_id": ids[0]}) == (204, {})
    status, claim = client.status_body("claim_create", {"queue_name": "del", "limit": 1})
    assert status == 201
    cid = claim["claim_id"]
    status, body = client.status_body("message_delete", {"queue_name": "del",
                                                         "message_id": ids[1]})
    assert status == 403
    assert body["error"] == ("This message is claimed; it cannot be deleted without a valid "
                             "claim ID.")
    status, body = client.status_body("message_delete", {"queue_name": "del",
                                                         "message_id": ids[2],
                                                         "claim_id": cid})
    assert (status, body["error"]) == (
        400, "A claim was specified, but the message is not currently claimed.")
    status, body = client.status_body("message_delete", {"queue_name": "del",
                                                         "message_id": ids[1],
                                                         "claim_id": "bogus"})
    assert (status, body["error"]) == (400, "The specified claim does not exist or has expired.")
    assert client.status_body("message_delete", {"queue_name": "del", "message_id": ids[1],
                                                 "claim_id": cid}) == (204, {})
    assert [m["id"] for m in client.status_body(
        "message_list", {"queue_name": "del", "echo": True})[1]["messages"]] == [ids[2]]


def test_message_delete_many_and_pop(client: WSClient) -> None:
    ids = post(client, "dm", 1, 2, 3, 4)
    assert client.status_body("message_delete_many", {"queue_name": "dm",
                                                      "message_ids": ids[:2]}) == (204, {})
    status, body = client.status_body("message_delete_many", {"queue_name": "dm", "pop": 1})
    assert status == 200
    assert body["messages"][0]["id"] == ids[2]
    assert set(body["messages"][0]) == {"id", "age", "ttl", "claim_count", "body", "claim_id"}
    assert (body["messages"][0]["claim_count"], body["messages"][0]["claim_id"]) == (0, None)
    remaining = client.status_body("message_list", {"queue_name": "dm", "echo": True})[1]
    assert [m["id"] for m in remaining["messages"]] == [ids[3]]
    for bad in ({"message_ids": ids, "pop": 1}, {}, {"pop": 21},
                {"message_ids": ["a"] * 21}):
        status, body = client.status_body("message_delete_many", {"queue_name": "dm", **bad})
        assert status == 400 and body["error"] is None, bad


# -- claims ------------------------------------------------------------------

def test_claim_lifecycle(client: WSClient) -> None:
    assert client.status_body("claim_create", {"queue_name": "empty"}) == (
        204, {"claim_id": None})
    ids = post(client, "c", "a", "b", "c")
    status, body = client.status_body("claim_create", {"queue_name": "c", "limit": 2,
                                                       "ttl": 120, "grace": 60})
    assert status == 201
    cid = body["claim_id"]
    assert [m["id"] for m in body["messages"]] == ids[:2]
    assert all(m["claim_id"] == cid for m in body["messages"])
    assert set(body["messages"][0]) == {"id", "claim_id", "ttl", "age", "body"}
    status, claim = client.status_body("claim_get", {"queue_name": "c", "claim_id": cid})
    assert status == 200 and set(claim) == {"age", "ttl", "messages"}
    assert claim["ttl"] == 120 and [m["claim_id"] for m in claim["messages"]] == [cid, cid]
    assert client.status_body("claim_update", {"queue_name": "c", "claim_id": cid,
                                               "ttl": 600}) == (204, f"Claim {cid} updated.")
    assert client.status_body("claim_get", {"queue_name": "c", "claim_id": cid})[1]["ttl"] \
        == 600
    # Missing ttl on update: reset to the default (quirk kept).
    client.status_body("claim_update", {"queue_name": "c", "claim_id": cid})
    assert client.status_body("claim_get", {"queue_name": "c", "claim_id": cid})[1]["ttl"] \
        == 300
    assert client.status_body("claim_delete", {"queue_name": "c", "claim_id": cid}) == (
        204, f"Claim {cid} deleted.")
    status, body = client.status_body("claim_get", {"queue_name": "c", "claim_id": cid})
    assert status == 404 and body["error"] == f"Claim {cid} does not exist."
    status, body = client.status_body("claim_update", {"queue_name": "c", "claim_id": cid,
                                                       "ttl": 100})
    assert status == 404 and body["error"] == f"Claim {cid} does not exist."
    # Released messages are claimable again.
    assert client.status_body("claim_create", {"queue_name": "c"})[0] == 201


@pytest.mark.parametrize("body,text", [
    ({"ttl": 59}, "The TTL for a claim may not exceed 43200 seconds, and must be at least 60 "
                  "seconds long."),
    ({"grace": 43201}, "The grace for a claim may not exceed 43200 seconds, and must be at "
                       "least 60 seconds long."),
    ({"limit": 21}, "Limit must be at least 1 and may not be greater than 20."),
    ({"limit": 0}, "Limit must be at least 1 and may not be greater than 20."),
])
def test_claim_create_out_of_range(client: WSClient, body, text: str) -> None:
    assert client.status_body("claim_create", {"queue_name": "c", **body}) == (
        400, {"exception": text, "error": None})


def test_claim_update_ttl_out_of_range(client: WSClient) -> None:
    status, body = client.status_body("claim_update", {"queue_name": "c", "claim_id": "x",
                                                       "ttl": 43201})
    assert status == 400 and body["exception"].startswith("The TTL for a claim")


# -- storage failures --------------------------------------------------------

def test_storage_unavailable_gives_503_with_summary(client: WSClient) -> None:
    status, body = client.status_body("message_list", {"queue_name": "down-1"})
    assert status == 503
    assert body == {"exception": "The storage service did not answer in time. Please try "
                                 "again in a few seconds.",
                    "error": "Messages could not be listed."}
    assert client.status_body("queue_create", {"queue_name": "down-1"})[1]["error"] == \
        "Queue could not be created."


def test_storage_bug_gives_500(client: WSClient) -> None:
    assert client.status_body("queue_get", {"queue_name": "bug-1"}) == (
        500, {"exception": "KeyError: 'oops'", "error": "Unexpected error."})


def test_message_post_honours_the_queue_post_size(client: WSClient) -> None:
    client.status_body("queue_create", {"queue_name": "capped",
                                        "metadata": {"_max_messages_post_size": 100}})
    assert post(client, "capped", "small")
    status, body = client.status_body("message_post", {"queue_name": "capped",
                                                       "messages": [{"body": "x" * 200}]})
    assert status == 400 and body["error"] is None
    assert body["exception"].startswith("Message collection size is too large.")
