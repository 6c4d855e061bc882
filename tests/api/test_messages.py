"""Message endpoints over real HTTP (rest-v2.md §4): post, list, bulk get,
bulk delete, pop, get one, delete one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.api.conftest import Client, FakeClock, Stack, assert_error

MESSAGE_KEYS = {"id", "href", "ttl", "age", "body"}


def listing(api: Client, queue: str, query: str = "", **kw: Any) -> dict[str, Any]:
    resp = api.get(f"/v2/queues/{queue}/messages{query}", **kw)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- POST -------------------------------------------------------------------------------


def test_post_returns_resources_and_location(api: Client) -> None:
    bodies: list[Any] = [None, 1, "text", [1, 2], {"event": "x"}, True, 1.5]
    resp = api.post("/v2/queues/q/messages",
                    json_body={"messages": [{"body": b, "ttl": 300} for b in bodies]})
    assert resp.status_code == 201, resp.text
    resources = resp.json()["resources"]
    assert list(resp.json()) == ["resources"]  # no "partial"
    ids = [href.rsplit("/", 1)[1] for href in resources]
    assert resources == [f"/v2/queues/q/messages/{mid}" for mid in ids]
    assert resp.headers["Location"] == f"/v2/queues/q/messages?ids={','.join(ids)}"
    # The queue was created implicitly, and bodies come back verbatim, in order.
    assert [q["name"] for q in api.get("/v2/queues").json()["queues"]] == ["q"]
    got = listing(api, "q", "?echo=true")["messages"]
    assert [m["body"] for m in got] == bodies
    assert [m["id"] for m in got] == ids
    assert all(set(m) == MESSAGE_KEYS and m["ttl"] == 300 for m in got)


def test_post_ttl_defaults(api: Client) -> None:
    (default_id,) = api.post_messages("plain", 1)
    assert api.get(f"/v2/queues/plain/messages/{default_id}").json()["ttl"] == 3600
    api.put("/v2/queues/short", json_body={"_default_message_ttl": 120})
    (queue_default_id,) = api.post_messages("short", 1)
    assert api.get(f"/v2/queues/short/messages/{queue_default_id}").json()["ttl"] == 120


def test_post_drops_unknown_message_keys(api: Client) -> None:
    resp = api.post("/v2/queues/q/messages",
                    json_body={"messages": [{"body": 1, "id": "forged", "claim_id": "x"}]})
    assert resp.status_code == 201
    (message,) = listing(api, "q", "?echo=true")["messages"]
    assert message["id"] != "forged" and "claim_id=" not in message["href"]


def test_post_size_limits(api: Client) -> None:
    payload = {"messages": [{"body": "x" * 262144}]}
    assert_error(api.post("/v2/queues/q/messages", json_body=payload), 400,
                 "Invalid API request", "Message collection size is too large. Max size 262144")
    # Whitespace counts: the raw length is what is limited.
    data = b'{"messages": [{"body": 1}]}' + b" " * 262144
    assert_error(api.post("/v2/queues/q/messages", data=data), 400, None,
                 "Message collection size is too large")
    api.put("/v2/queues/capped", json_body={"_max_messages_post_size": 100})
    small = {"messages": [{"body": "x" * 10}]}
    assert api.post("/v2/queues/capped/messages", json_body=small).status_code == 201
    big = {"messages": [{"body": "x" * 100}]}
    assert_error(api.post("/v2/queues/capped/messages", json_body=big), 400, None,
                 "The max size for current queue is 100")


@pytest.mark.parametrize("data,title,description", [
    (b"", "Invalid request body", "Request body can not be empty"),
    (b"{", "Invalid request body", "Request body could not be parsed."),
    (b'"messages"', "Invalid request body", "Request body could not be parsed."),
    (b'{"messages": [{"body": 9223372036854775808}]}', "Invalid request body",
     "JSON contains integer that is too large."),
    (b'{"messages": [{"body": "\xc3\x28"}]}', "Invalid request body",
     "Request body could not be parsed."),
    (b"{}", "Invalid API request", "No messages were found in the request body."),
    (b'[{"body": 1}]', "Invalid API request", "No messages were found in the request body."),
    (b'{"messages": {"body": 1}}', "Invalid request body", "Document type not supported."),
    (b'{"messages": [{"ttl": 60}]}', "Invalid request body", 'Missing "body" field.'),
    (b'{"messages": [{"body": 1, "ttl": "60"}]}', "Invalid request body",
     'The value of the "ttl" field must be a int.'),
    (b'{"messages": []}', "Invalid API request", "No messages to enqueu."),
    (b'{"messages": [{"body": 1, "ttl": 59}]}', "Invalid API request",
     "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds "
     "long."),
    (b'{"messages": [{"body": 1, "ttl": 1209601}]}', "Invalid API request",
     "The TTL for a message may not exceed"),
])
def test_post_errors(api: Client, data: bytes, title: str, description: str) -> None:
    assert_error(api.post("/v2/queues/q/messages", data=data), 400, title, description)
    assert api.get("/v2/queues/q/stats").json()["messages"]["total"] == 0


def test_delay_is_ignored_on_queues_without_default_delay(api: Client) -> None:
    resp = api.post("/v2/queues/q/messages",
                    json_body={"messages": [{"body": 1, "delay": 600}, {"body": 2,
                                                                        "delay": "junk"}]})
    assert resp.status_code == 201, resp.text
    assert len(listing(api, "q", "?echo=true")["messages"]) == 2


def test_delay_on_a_delaying_queue(api: Client, clock: FakeClock) -> None:
    api.put("/v2/queues/d", json_body={"_default_message_delay": 30})
    (delayed,) = api.post_messages("d", 1)
    resp = api.post("/v2/queues/d/messages", json_body={"messages": [{"body": 0, "delay": 0}]})
    (now_id,) = [href.rsplit("/", 1)[1] for href in resp.json()["resources"]]
    assert [m["id"] for m in listing(api, "d", "?echo=true")["messages"]] == [now_id]
    both = listing(api, "d", "?echo=true&include_delayed=true")["messages"]
    assert [m["id"] for m in both] == [delayed, now_id]
    assert api.get(f"/v2/queues/d/messages/{delayed}").status_code == 200
    clock.advance(31)
    assert len(listing(api, "d", "?echo=true")["messages"]) == 2
    for bad in (901, -1, "x"):
        resp = api.post("/v2/queues/d/messages", json_body={"messages": [{"body": 0,
                                                                          "delay": bad}]})
        assert resp.status_code == 400, (bad, resp.text)


def test_checksum_when_enabled(stack: Stack, api: Client) -> None:
    stack.override("enable_checksum", True)
    (mid,) = api.post_messages("q", 1)
    message = api.get(f"/v2/queues/q/messages/{mid}").json()
    assert message["checksum"].startswith("MD5:")
    assert set(message) == MESSAGE_KEYS | {"checksum"}
    popped = api.delete("/v2/queues/q/messages?pop=1").json()["messages"][0]
    assert popped["checksum"] == message["checksum"]


# -- list -------------------------------------------------------------------------------


def test_list_missing_queue(api: Client) -> None:
    assert listing(api, "never") == {"messages": [], "links": []}


def test_list_pagination(api: Client) -> None:
    ids = api.post_messages("q", 10)
    page = listing(api, "q", "?limit=3&echo=true")
    sizes, seen = [], []
    while True:
        sizes.append(len(page["messages"]))
        seen.extend(m["id"] for m in page["messages"])
        if not page["messages"]:
            assert page["links"] == []
            break
        (link,) = page["links"]
        assert link["rel"] == "next"
        assert link["href"].startswith("/v2/queues/q/messages?limit=3&echo=true&marker=")
        page = api.get(link["href"]).json()
    assert sizes == [3, 3, 3, 1, 0]
    assert seen == ids


def test_list_default_limit_is_10(api: Client) -> None:
    api.post_messages("q", 12)
    assert len(listing(api, "q", "?echo=true")["messages"]) == 10


def test_echo_filters_own_messages(stack: Stack, api: Client) -> None:
    api.post_messages("q", 2)
    assert listing(api, "q")["messages"] == []
    assert listing(api, "q", "?echo=false")["messages"] == []
    assert len(listing(api, "q", "?echo=true")["messages"]) == 2
    # The same client in dashed form is the same client.
    dashed = str(uuid.UUID(api.client_id))
    assert listing(api, "q", headers={"Client-ID": dashed})["messages"] == []
    other = Client(stack.base_url, project=api.project)
    assert len(listing(other, "q")["messages"]) == 2


def test_include_claimed(stack: Stack, api: Client) -> None:
    api.post_messages("q", 3)
    cid, _ = api.claim("q", limit=2)
    assert len(listing(api, "q", "?echo=true")["messages"]) == 1
    assert listing(api, "q", "?include_claimed=true&echo=false")["messages"] == []
    every = listing(api, "q", "?include_claimed=true&echo=true")["messages"]
    assert len(every) == 3
    assert sum(m["href"].endswith(f"?claim_id={cid}") for m in every) == 2
    other = Client(stack.base_url, project=api.project)
    assert len(listing(other, "q", "?include_claimed=true")["messages"]) == 3
    link = listing(api, "q", "?include_claimed=true&echo=true&include_delayed=false")["links"]
    assert link[0]["href"].startswith(
        "/v2/queues/q/messages?echo=true&include_claimed=true&include_delayed=false&marker=")


def test_list_malformed_marker_is_an_empty_page(api: Client) -> None:
    api.post_messages("q", 2)
    for marker in ("zzz", "-5", "1.5", "%FF"):
        assert listing(api, "q", f"?echo=true&marker={marker}") == {"messages": [],
                                                                     "links": []}


@pytest.mark.parametrize("query", ["limit=0", "limit=21", "limit=-3"])
def test_list_limit_out_of_range(api: Client, query: str) -> None:
    assert_error(api.get(f"/v2/queues/q/messages?{query}"), 400, "Invalid API request",
                 "Limit must be at least 1 and may not be greater than 20.")


@pytest.mark.parametrize("query,name", [("limit=x", "limit"), ("echo=TRUE", "echo"),
                                        ("include_claimed=None", "include_claimed"),
                                        ("include_delayed=2", "include_delayed")])
def test_list_bad_parameters(api: Client, query: str, name: str) -> None:
    assert_error(api.get(f"/v2/queues/q/messages?{query}"), 400, "Invalid parameter",
                 f'The "{name}" parameter is invalid.')


def test_expired_messages_are_not_listed(api: Client, clock: FakeClock) -> None:
    api.post_messages("q", 1, ttl=60)
    api.post_messages("q", 1, ttl=120)
    clock.advance(61)
    assert len(listing(api, "q", "?echo=true")["messages"]) == 1


# -- GET by ids -------------------------------------------------------------------------


def test_get_many(api: Client) -> None:
    ids = api.post_messages("q", 4)
    cid, _ = api.claim("q", limit=1)
    for query in (f"?ids={ids[0]},{ids[1]}&ids={ids[2]}",
                  f"?ids={ids[0]}&ids={ids[1]}&ids={ids[2]}",
                  f"?ids={ids[0]},{ids[1]},{ids[2]},{uuid.uuid4().hex},junk"):
        body = api.get(f"/v2/queues/q/messages{query}").json()
        assert list(body) == ["messages"]  # no links
        by_id = {m["id"]: m for m in body["messages"]}
        assert set(by_id) == set(ids[:3])
        assert by_id[ids[0]]["href"] == f"/v2/queues/q/messages/{ids[0]}?claim_id={cid}"
        assert by_id[ids[1]]["href"] == f"/v2/queues/q/messages/{ids[1]}"


def test_get_many_none_found(stack: Stack, api: Client) -> None:
    ids = api.post_messages("q", 1)
    for queue, query in (("q", f"?ids={uuid.uuid4().hex}"), ("never", f"?ids={ids[0]}"),
                         ("q", "?ids=junk,also-junk")):
        body = assert_error(api.get(f"/v2/queues/{queue}/messages{query}"), 404, "Not found")
        assert body["description"].startswith("No messages with IDs: [")
        assert body["description"].endswith(
            f"found in the queue {queue} for project {api.project}.")
    other = Client(stack.base_url)
    assert_error(other.get(f"/v2/queues/q/messages?ids={ids[0]}"), 404)


def test_get_many_too_many_ids(api: Client) -> None:
    query = ",".join(uuid.uuid4().hex for _ in range(21))
    assert_error(api.get(f"/v2/queues/q/messages?ids={query}"), 400, "Invalid API request",
                 "ids parameter should have at least 1 and not greater than 20 values.")


# -- DELETE by ids / pop --------------------------------------------------------------


def test_delete_many_ignores_claims_and_unknown_ids(api: Client) -> None:
    ids = api.post_messages("q", 4)
    api.claim("q", limit=2)
    resp = api.delete(f"/v2/queues/q/messages?ids={ids[0]},{ids[2]},junk&ids={uuid.uuid4().hex}")
    assert resp.status_code == 204 and resp.content == b""
    left = listing(api, "q", "?echo=true&include_claimed=true")["messages"]
    assert [m["id"] for m in left] == [ids[1], ids[3]]
    assert api.delete(f"/v2/queues/never/messages?ids={ids[1]}").status_code == 204


@pytest.mark.parametrize("query,description", [
    ("", 'The request should have either "ids" or "pop" parameter in the request, to be able '
         'to delete.'),
    ("?ids=", 'either "ids" or "pop"'),
    ("?ids=a&pop=1", "pop and id params cannot be present together in the delete request."),
    ("?pop=0", "Pop value must be at least 1 and may not be greater than 20."),
    ("?pop=21", "Pop value must be at least 1 and may not be greater than 20."),
    ("?ids=" + ",".join(str(i) for i in range(21)),
     "ids parameter should have at least 1 and not greater than 20 values."),
])
def test_bulk_delete_errors(api: Client, query: str, description: str) -> None:
    assert_error(api.delete(f"/v2/queues/q/messages{query}"), 400, "Invalid API request",
                 description)


def test_bulk_delete_bad_pop_type(api: Client) -> None:
    assert_error(api.delete("/v2/queues/q/messages?pop=x"), 400, "Invalid parameter",
                 '"pop" parameter is invalid')


def test_delete_many_with_claim_ids_mode(stack: Stack, api: Client) -> None:
    stack.override("message_delete_with_claim_id", True, group="limits")
    ids = api.post_messages("q", 3)
    cid, _ = api.claim("q", limit=2)
    assert_error(api.delete(f"/v2/queues/q/messages?ids={ids[0]}"), 400, None,
                 'both "ids" and "claim_ids"')
    resp = api.delete(f"/v2/queues/q/messages?ids={ids[0]}&claim_ids={uuid.uuid4().hex}")
    assert_error(resp, 400)
    resp = api.delete(f"/v2/queues/q/messages?ids={ids[0]}&claim_ids=not-an-id")
    assert_error(resp, 400)
    assert api.delete(f"/v2/queues/q/messages?ids={ids[0]}&claim_ids={cid}").status_code == 204
    left = listing(api, "q", "?echo=true&include_claimed=true")["messages"]
    assert [m["id"] for m in left] == ids[1:]


def test_pop(api: Client) -> None:
    ids = api.post_messages("q", 4)
    api.claim("q", limit=1)  # ids[0] is claimed: never popped
    resp = api.delete("/v2/queues/q/messages?pop=2")
    assert resp.status_code == 200
    popped = resp.json()["messages"]
    assert [m["id"] for m in popped] == ids[1:3]
    for m in popped:
        assert set(m) == {"id", "ttl", "age", "body", "claim_count", "claim_id"}
        assert m["claim_count"] == 0 and m["claim_id"] is None
    assert [m["body"] for m in popped] == [{"n": 1}, {"n": 2}]
    assert [m["id"] for m in api.delete("/v2/queues/q/messages?pop=20").json()["messages"]] == [
        ids[3]]
    assert api.delete("/v2/queues/q/messages?pop=5").json() == {"messages": []}
    assert api.delete("/v2/queues/never/messages?pop=1").json() == {"messages": []}


# -- GET one ----------------------------------------------------------------------------


def test_get_one(api: Client, clock: FakeClock) -> None:
    (mid,) = api.post_messages("q", 1, ttl=100)
    clock.advance(7)
    resp = api.get(f"/v2/queues/q/messages/{mid}?claim_id={uuid.uuid4().hex}")
    assert resp.status_code == 200
    assert resp.json() == {"id": mid, "href": f"/v2/queues/q/messages/{mid}", "ttl": 100,
                           "age": 7, "body": {"n": 0}}
    cid, _ = api.claim("q")
    assert api.get(f"/v2/queues/q/messages/{mid}").json()["href"].endswith(f"?claim_id={cid}")


def test_get_one_not_found(stack: Stack, api: Client, clock: FakeClock) -> None:
    (mid,) = api.post_messages("q", 1, ttl=60)
    api.put("/v2/queues/other")
    for queue, message_id in (("q", uuid.uuid4().hex), ("q", "junk"), ("q", "A" * 500),
                              ("other", mid), ("never", mid)):
        assert_error(api.get(f"/v2/queues/{queue}/messages/{message_id}"), 404, "Not found",
                     f"Message {message_id} does not exist in queue {queue} for project "
                     f"{api.project}")
    assert_error(Client(stack.base_url).get(f"/v2/queues/q/messages/{mid}"), 404)
    clock.advance(61)
    assert_error(api.get(f"/v2/queues/q/messages/{mid}"), 404)


# -- DELETE one -------------------------------------------------------------------------

CLAIMED = "This message is claimed; it cannot be deleted without a valid claim ID."
NOT_CLAIMED = "A claim was specified, but the message is not currently claimed."
BAD_CLAIM = "The specified claim does not exist or has expired."


def test_delete_one_unclaimed(api: Client) -> None:
    (mid,) = api.post_messages("q", 1)
    resp = api.delete(f"/v2/queues/q/messages/{mid}")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(api.get(f"/v2/queues/q/messages/{mid}"), 404)


@pytest.mark.parametrize("query", ["", "?claim_id=8d1e2f3a4b5c4d6e9f0a1b2c3d4e5f60"])
def test_delete_one_missing_message(api: Client, query: str) -> None:
    assert api.delete(f"/v2/queues/q/messages/{uuid.uuid4().hex}{query}").status_code == 204
    assert api.delete(f"/v2/queues/q/messages/junk{query}").status_code == 204


@pytest.mark.parametrize("claim_id", ["junk", "x" * 40, "%FF"])
def test_delete_one_malformed_claim_id(api: Client, claim_id: str) -> None:
    (mid,) = api.post_messages("q", 1)
    for message_id in (mid, uuid.uuid4().hex):
        resp = api.delete(f"/v2/queues/q/messages/{message_id}?claim_id={claim_id}")
        assert_error(resp, 400, "Unable to delete", BAD_CLAIM)
    assert api.get(f"/v2/queues/q/messages/{mid}").status_code == 200


def test_delete_one_claimed(api: Client, clock: FakeClock) -> None:
    ids = api.post_messages("q", 3)
    cid, _ = api.claim("q", limit=2)
    # Claimed, no claim id → 403.
    assert_error(api.delete(f"/v2/queues/q/messages/{ids[0]}"), 403, "Unable to delete",
                 CLAIMED)
    # Claimed by another live claim → 403.
    other_cid, _ = api.claim("q", limit=1)
    assert_error(api.delete(f"/v2/queues/q/messages/{ids[0]}?claim_id={other_cid}"), 403,
                 "Unable to delete")
    # Not claimed, claim id given → 400.
    api.delete(f"/v2/queues/q/claims/{other_cid}")
    assert_error(api.delete(f"/v2/queues/q/messages/{ids[2]}?claim_id={cid}"), 400,
                 "Unable to delete", NOT_CLAIMED)
    # Matching claim → deleted.
    assert api.delete(f"/v2/queues/q/messages/{ids[0]}?claim_id={cid}").status_code == 204
    assert_error(api.get(f"/v2/queues/q/messages/{ids[0]}"), 404)
    # The claim expired and nobody re-claimed: its id still deletes.
    clock.advance(301)
    assert api.delete(f"/v2/queues/q/messages/{ids[1]}?claim_id={cid}").status_code == 204
    assert_error(api.get(f"/v2/queues/q/messages/{ids[1]}"), 404)


def test_delete_one_after_release(api: Client) -> None:
    (mid,) = api.post_messages("q", 1)
    cid, _ = api.claim("q")
    assert api.delete(f"/v2/queues/q/claims/{cid}").status_code == 204
    assert_error(api.delete(f"/v2/queues/q/messages/{mid}?claim_id={cid}"), 400,
                 "Unable to delete", NOT_CLAIMED)
    assert api.delete(f"/v2/queues/q/messages/{mid}").status_code == 204


def test_post_body_round_trips_unicode(api: Client) -> None:
    body = {"text": "héllo € \U0001f600", "nested": [{"k": None}]}
    data = json.dumps({"messages": [{"body": body}]}, ensure_ascii=False).encode()
    assert api.post("/v2/queues/q/messages", data=data).status_code == 201
    assert listing(api, "q", "?echo=true")["messages"][0]["body"] == body


def test_deeply_nested_bodies(api: Client) -> None:
    """The deepest accepted body survives the whole RPC round trip; deeper is a 400."""
    from herald.common.edge.limits import MAX_DEPTH

    body: Any = "leaf"
    for _ in range(MAX_DEPTH - 3):  # + envelope object, "messages" array, message object
        body = [body]
    resp = api.post("/v2/queues/q/messages", json_body={"messages": [{"body": body}]})
    assert resp.status_code == 201, resp.text
    assert listing(api, "q", "?echo=true")["messages"][0]["body"] == body
    _, claimed = api.claim("q")
    assert claimed[0]["body"] == body
    resp = api.post("/v2/queues/q/messages", json_body={"messages": [{"body": [body]}]})
    assert_error(resp, 400, "Invalid request body", "Request body could not be parsed.")
    deep = {"a": body}
    assert_error(api.put("/v2/queues/deep", json_body={"k": [[deep]]}), 400,
                 "Invalid request body", "nested deeper")


def test_binary_bodies_from_msgpack_clients_are_shown(stack: Stack, api: Client) -> None:
    """A websocket msgpack client may post raw bytes; REST shows them instead of a 500."""
    from herald.common.context import RequestContext

    ctxt = RequestContext(project_id=api.project, client_id=api.client_id)
    text_id, blob_id = stack.run(stack.storage.message_post(
        ctxt, "bin", [{"body": "héllo".encode(), "ttl": None},
                      {"body": {"raw": b"\xff\x00"}, "ttl": None}], 10))
    assert api.get(f"/v2/queues/bin/messages/{text_id}").json()["body"] == "héllo"
    assert api.get(f"/v2/queues/bin/messages/{blob_id}").json()["body"] == {"raw": "/wA="}
    assert len(listing(api, "bin", "?echo=true")["messages"]) == 2
