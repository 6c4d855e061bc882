"""Queue endpoints over real HTTP (rest-v2.md §3): list, create, metadata,
JSON-patch, delete, stats, purge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Client, FakeClock, Stack, assert_error

PATCH_TYPE = "application/openstack-messaging-v2.0-json-patch"
DEFAULTS = {
    "_max_messages_post_size": 262144, "_default_message_ttl": 3600,
    "_default_message_delay": 0, "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None, "_max_claim_count": None,
    "_enable_encrypt_messages": False,
}


def patch(api: Client, queue: str, ops: Any, content_type: str = PATCH_TYPE):
    data = ops if isinstance(ops, bytes | str) else json.dumps(ops)
    return api.patch(f"/v2/queues/{queue}", data=data, headers={"Content-Type": content_type})


# -- PUT ------------------------------------------------------------------------------


def test_create_then_exists(api: Client) -> None:
    resp = api.put("/v2/queues/q1", json_body={"messages": {"ttl": 600}})
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/v2/queues/q1"
    assert resp.content == b""
    # Quirk #1: existing queue → 204, metadata untouched.
    resp = api.put("/v2/queues/q1", json_body={"other": 1})
    assert resp.status_code == 204
    assert resp.headers["Location"] == "/v2/queues/q1"
    assert api.get("/v2/queues/q1").json() == {**DEFAULTS, "messages": {"ttl": 600}}


def test_create_without_body_and_with_empty_body(api: Client) -> None:
    assert api.put("/v2/queues/a").status_code == 201
    assert api.put("/v2/queues/b", data=b"").status_code == 201
    assert api.get("/v2/queues/a").json() == DEFAULTS


def test_create_size_limit(api: Client) -> None:
    body = json.dumps({"k": "x" * 65536})
    assert_error(api.put("/v2/queues/q", data=body), 400, "Invalid API request",
                 "Queue metadata is too large. Max size: 65536")
    # Size is checked before parsing: an oversized garbage body gets the size error.
    assert_error(api.put("/v2/queues/q", data=b"{" * 65537), 400, "Invalid API request",
                 "Queue metadata is too large")


@pytest.mark.parametrize("data,description", [
    (b"{", "Request body could not be parsed."),
    (b"123", "Request body could not be parsed."),
    (b"[]", "Document type not supported."),
    (b'{"a": \xff}', "Request body could not be parsed."),
    (b'{"a": 9223372036854775808}', "JSON contains integer that is too large."),
])
def test_create_bad_bodies(api: Client, data: bytes, description: str) -> None:
    assert_error(api.put("/v2/queues/q", data=data), 400, "Invalid request body", description)
    assert api.get("/v2/queues").json()["queues"] == []


@pytest.mark.parametrize("metadata,description", [
    ({"_default_message_ttl": "123"}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": 0}, "_default_message_ttl can not exceed 1209600 seconds"),
    ({"_max_messages_post_size": 0}, "_max_messages_post_size can not exceed 262144,  and"),
    ({"_max_claim_count": "x"}, "_max_claim_count must be integer."),
    ({"_dead_letter_queue_messages_ttl": 0}, "The TTL for a message may not exceed"),
    ({"_default_message_delay": 901}, "The TTL can not exceed 900 seconds"),
    ({"_enable_encrypt_messages": "yes"}, "_enable_encrypt_messages must be boolean."),
    ({"_retry_policy": {"minimum_delay": 40}}, "minimum_delay must less than maximum_delay."),
])
def test_create_reserved_key_validation(api: Client, metadata: dict, description: str) -> None:
    assert_error(api.put("/v2/queues/q", json_body=metadata), 400, "Invalid API request",
                 description)


def test_put_existing_queue_still_validates_body(api: Client) -> None:
    api.put("/v2/queues/q")
    assert_error(api.put("/v2/queues/q", json_body={"_default_message_ttl": 1}), 400)


# -- GET ------------------------------------------------------------------------------


def test_get_missing_queue_shows_defaults(api: Client) -> None:
    resp = api.get("/v2/queues/never")
    assert resp.status_code == 200
    assert resp.json() == DEFAULTS


def test_get_shows_stored_reserved_values_and_defaults_for_falsy(api: Client) -> None:
    api.put("/v2/queues/q", json_body={"_default_message_ttl": 120, "_max_claim_count": 0,
                                       "_dead_letter_queue": "", "_enable_encrypt_messages": True,
                                       "free": None})
    assert api.get("/v2/queues/q").json() == {
        **DEFAULTS, "_default_message_ttl": 120, "_enable_encrypt_messages": True, "free": None}


def test_get_after_delete_shows_defaults(api: Client) -> None:
    api.put("/v2/queues/q", json_body={"a": 1})
    assert api.delete("/v2/queues/q").status_code == 204
    assert api.get("/v2/queues/q").json() == DEFAULTS


def test_default_shown_follows_config(stack: Stack, api: Client) -> None:
    stack.override("default_message_ttl", 100, group="limits")
    assert api.get("/v2/queues/q").json()["_default_message_ttl"] == 100


# -- PATCH ----------------------------------------------------------------------------


def test_patch_add_replace_remove(api: Client) -> None:
    api.put("/v2/queues/q", json_body={"a": 1, "b": 2})
    resp = patch(api, "q", [
        {"op": "add", "path": "/metadata/c", "value": {"x": [1]}},
        {"op": "replace", "path": "/metadata/a", "value": 10},
        {"op": "remove", "path": "/metadata/b"},
        {"op": "replace", "path": "/metadata/_default_message_ttl", "value": 120},
    ])
    assert resp.status_code == 200, resp.text
    expected = {**DEFAULTS, "a": 10, "c": {"x": [1]}, "_default_message_ttl": 120}
    assert resp.json() == expected
    assert api.get("/v2/queues/q").json() == expected


def test_patch_like_python_zaqarclient(api: Client) -> None:
    """Queue.metadata(new_meta=...) replaces non-null keys of the GET result,
    adds new ones and removes every other key -- including reserved ones."""
    api.put("/v2/queues/q", json_body={"old": 1})
    current = api.get("/v2/queues/q").json()
    new_meta = {"old": 2, "new": 3}
    ops = []
    for key, value in new_meta.items():
        op = "replace" if current.get(key) is not None else "add"
        ops.append({"op": op, "path": f"/metadata/{key}", "value": value})
    for key in current:
        if key not in new_meta:
            ops.append({"op": "remove", "path": f"/metadata/{key}"})
    resp = patch(api, "q", ops)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**DEFAULTS, "old": 2, "new": 3}


def test_patch_missing_queue_is_404(api: Client) -> None:
    resp = patch(api, "nope", [{"op": "add", "path": "/metadata/a", "value": 1}])
    assert_error(resp, 404, "Not found",
                 f"Queue nope does not exist for project {api.project}")


@pytest.mark.parametrize("content_type", ["application/json", PATCH_TYPE + "; charset=utf-8",
                                          "application/json-patch+json"])
def test_patch_content_type_is_415(api: Client, content_type: str) -> None:
    api.put("/v2/queues/q")
    resp = patch(api, "q", [{"op": "add", "path": "/metadata/a", "value": 1}], content_type)
    assert_error(resp, 415, "415 Unsupported Media Type",
                 "Accepted media type for PATCH: {'Accept-Patch': "
                 "'application/openstack-messaging-v2.0-json-patch'}.")


def test_patch_size_is_checked_before_content_type(api: Client) -> None:
    resp = patch(api, "q", b"[" + b" " * 65536 + b"]", "text/plain")
    assert_error(resp, 400, "Invalid API request", "Queue metadata is too large")


@pytest.mark.parametrize("data,description", [
    (b"", "PATCH body could not be empty for update."),
    (b"[", "Request body could not be parsed."),
    (b'{"op": "add"}', "Document type not supported."),
    (b"[]", "PATCH body could not be empty for update."),
    (b"[1]", "Operations must be JSON objects."),
    (b'[{"path": "/metadata/a"}]', "Unable to find `op`"),
    (b'[{"op": "copy", "path": "/metadata/a"}]', "Invalid operation"),
    (b'[{"op": "add", "value": 1}]', "Unable to find 'path'"),
    (b'[{"op": "add", "path": "metadata/a", "value": 1}]', 'does not start with "/"'),
    (b'[{"op": "add", "path": "/a", "value": 1}]',
     "Invalid JSON pointer for this resource: '/a, e.g /metadata/key'"),
    (b'[{"op": "add", "path": "/metadata/a"}]',
     'Operation "add" requires a member named "value".'),
    (b'[{"op": "add", "path": "/metadata/_default_message_ttl", "value": 1}]',
     "_default_message_ttl can not exceed"),
])
def test_patch_bad_bodies(api: Client, data: bytes, description: str) -> None:
    api.put("/v2/queues/q", json_body={"a": 1})
    assert_error(patch(api, "q", data), 400, "Invalid request body", description)
    assert api.get("/v2/queues/q").json() == {**DEFAULTS, "a": 1}  # nothing applied


@pytest.mark.parametrize("op,description", [
    ({"op": "replace", "path": "/metadata/nope", "value": 1},
     "Can't replace non-existent object nope."),
    ({"op": "remove", "path": "/metadata/nope"}, "Can't remove non-existent object nope."),
])
def test_patch_conflicts(api: Client, op: dict, description: str) -> None:
    api.put("/v2/queues/q")
    assert_error(patch(api, "q", [op]), 409, "Resource conflict", description)


def test_patch_validates_before_looking_up_the_queue(api: Client) -> None:
    assert_error(patch(api, "nope", [1]), 400, "Invalid request body")


# -- DELETE -----------------------------------------------------------------------------


def test_delete_queue_with_messages_and_missing_queue(api: Client) -> None:
    api.post_messages("q", 3)
    assert api.delete("/v2/queues/q").status_code == 204
    assert api.get("/v2/queues/q/stats").json() == {
        "messages": {"free": 0, "claimed": 0, "total": 0}}
    assert api.delete("/v2/queues/never").status_code == 204
    assert api.get("/v2/queues").json() == {"queues": [], "links": []}


# -- list -------------------------------------------------------------------------------


def test_list_empty(api: Client) -> None:
    resp = api.get("/v2/queues")
    assert resp.status_code == 200
    assert resp.json() == {"queues": [], "links": []}


def test_list_pages_with_links(api: Client) -> None:
    names = [f"q{i:02d}" for i in range(5)]
    for name in reversed(names):
        api.put(f"/v2/queues/{name}")
    resp = api.get("/v2/queues?limit=2")
    page = resp.json()
    assert page["queues"] == [{"name": n, "href": f"/v2/queues/{n}"} for n in names[:2]]
    assert page["links"] == [{"rel": "next", "href": "/v2/queues?limit=2&marker=q01"}]
    seen = [q["name"] for q in page["queues"]]
    while page["queues"]:
        page = api.get(page["links"][0]["href"]).json() if page["links"] else None
        seen.extend(q["name"] for q in page["queues"])
        if not page["queues"]:
            assert page["links"] == []
    assert seen == names


def test_list_default_limit_is_10(api: Client) -> None:
    for i in range(12):
        api.put(f"/v2/queues/q{i:02d}")
    assert len(api.get("/v2/queues").json()["queues"]) == 10


def test_list_detailed_matches_get(api: Client) -> None:
    api.put("/v2/queues/q", json_body={"a": 1, "_default_message_ttl": 300})
    resp = api.get("/v2/queues?detailed=true")
    (queue,) = resp.json()["queues"]
    assert queue["metadata"] == api.get("/v2/queues/q").json()
    assert resp.json()["links"][0]["href"] == "/v2/queues?detailed=true&marker=q"
    assert "metadata" not in api.get("/v2/queues?detailed=false").json()["queues"][0]


def test_list_with_count(api: Client) -> None:
    assert "count" not in api.get("/v2/queues?with_count=true").json()
    for name in ("a1", "a2", "b1"):
        api.put(f"/v2/queues/{name}")
    body = api.get("/v2/queues?with_count=true&limit=1&name=a").json()
    assert body["count"] == 3  # all queues of the project, filters ignored
    assert [q["name"] for q in body["queues"]] == ["a1"]
    assert body["links"][0]["href"] == "/v2/queues?limit=1&name=a&with_count=true&marker=a1"
    assert "count" not in api.get("/v2/queues?with_count=false").json()
    assert "count" not in api.get("/v2/queues").json()


def test_list_filters(api: Client) -> None:
    api.put("/v2/queues/small", json_body={"_max_messages_post_size": 2000, "node": 34})
    api.put("/v2/queues/big", json_body={"node": "34", "kind": "x"})
    api.put("/v2/queues/other")

    def names(query: str) -> list[str]:
        resp = api.get(f"/v2/queues?{query}")
        assert resp.status_code == 200, resp.text
        return [q["name"] for q in resp.json()["queues"]]

    assert names("_max_messages_post_size=2000") == ["small"]
    assert names("node=34") == ["small"]  # ints compare as ints
    assert names("kind=x") == ["big"]
    assert names("name=ig") == ["big"]
    assert names("name=o&kind=x") == []
    assert names("name=e") == ["other"]
    assert names("node=") == ["big", "other", "small"]  # empty value = absent


def test_list_marker_beyond_end(api: Client) -> None:
    api.put("/v2/queues/a")
    assert api.get("/v2/queues?marker=zzz").json() == {"queues": [], "links": []}


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=21"])
def test_list_limit_out_of_range(api: Client, query: str) -> None:
    assert_error(api.get(f"/v2/queues?{query}"), 400, "Invalid API request",
                 "Limit must be at least 1 and no greater than 20.")


@pytest.mark.parametrize("query,name", [("limit=abc", "limit"), ("limit=1.5", "limit"),
                                        ("detailed=TRUE", "detailed"),
                                        ("detailed=None", "detailed"),
                                        ("with_count=maybe", "with_count")])
def test_list_bad_parameters(api: Client, query: str, name: str) -> None:
    assert_error(api.get(f"/v2/queues?{query}"), 400, "Invalid parameter",
                 f'The "{name}" parameter is invalid.')


def test_list_only_own_project(stack: Stack, api: Client) -> None:
    api.put("/v2/queues/mine")
    assert Client(stack.base_url).get("/v2/queues").json()["queues"] == []


# -- stats ------------------------------------------------------------------------------


def test_stats_missing_queue(api: Client) -> None:
    resp = api.get("/v2/queues/never/stats")
    assert resp.status_code == 200
    assert resp.json() == {"messages": {"claimed": 0, "free": 0, "total": 0}}


def test_stats_counts_and_edges(api: Client, clock: FakeClock) -> None:
    ids = api.post_messages("q", 2, ttl=500)
    clock.advance(10)
    ids += api.post_messages("q", 2)
    claim_id, _ = api.claim("q", limit=1)
    clock.advance(2)
    stats = api.get("/v2/queues/q/stats").json()["messages"]
    assert (stats["total"], stats["claimed"], stats["free"]) == (4, 1, 3)
    # Zaqar's (redis store) shape and key order: the stored message with
    # its href in place of the id; clients read oldest["body"].
    assert list(stats["oldest"]) == ["age", "ttl", "body", "claim_id", "claim_count",
                                     "created", "href"]
    assert stats["oldest"]["body"] == {"n": 0} and stats["newest"]["body"] == {"n": 1}
    assert stats["oldest"]["ttl"] == 500 and stats["newest"]["ttl"] == 3600
    assert stats["oldest"]["claim_id"] == claim_id and stats["newest"]["claim_id"] is None
    assert stats["newest"]["claim_count"] == 0
    assert isinstance(stats["oldest"]["age"], int)
    assert stats["oldest"]["href"] == f"/v2/queues/q/messages/{ids[0]}"
    assert stats["newest"]["href"] == f"/v2/queues/q/messages/{ids[-1]}"
    assert stats["oldest"]["age"] == 12 and stats["newest"]["age"] == 2
    assert stats["oldest"]["created"].endswith("Z") and len(stats["oldest"]["created"]) == 20
    assert api.get(stats["oldest"]["href"]).status_code == 200


def test_stats_edges_show_a_group_only_when_the_message_has_one(api: Client) -> None:
    resp = api.post("/v2/queues/gq/messages", json_body={"messages": [
        {"body": "first", "group": "g1"}, {"body": "last"}]})
    assert resp.status_code == 201, resp.text
    stats = api.get("/v2/queues/gq/stats").json()["messages"]
    assert (stats["oldest"]["body"], stats["oldest"]["group"]) == ("first", "g1")
    assert stats["newest"]["body"] == "last" and "group" not in stats["newest"]


# -- purge ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, {"resource_types": ["messages"]},
                                  {"resource_types": ["messages", "subscriptions"]}])
def test_purge_messages(api: Client, body: Any) -> None:
    api.post_messages("q", 3)
    api.claim("q", limit=1)
    assert api.post("/v2/queues/q/purge", json_body=body).status_code == 204
    assert api.get("/v2/queues/q/stats").json()["messages"]["total"] == 0
    assert api.get("/v2/queues/q").status_code == 200


def test_purge_subscriptions_only_keeps_messages(api: Client) -> None:
    api.post_messages("q", 2)
    resp = api.post("/v2/queues/q/purge", json_body={"resource_types": ["subscriptions"]})
    assert resp.status_code == 204
    assert api.get("/v2/queues/q/stats").json()["messages"]["total"] == 2


def test_purge_missing_queue(api: Client) -> None:
    assert api.post("/v2/queues/never/purge").status_code == 204


@pytest.mark.parametrize("data,description", [
    (b"{}", 'Post body must contain key "resource_types".'),
    (b'{"types": ["messages"]}', 'Post body must contain key "resource_types".'),
    (b'["messages"]', 'Post body must contain key "resource_types".'),
    (b'{"resource_types": ["messages", "claims"]}', "Resource types must be a sub set of"),
    (b'{"resource_types": "messages"}', "Resource types must be a sub set of"),
    (b"{", "Request body could not be parsed."),
])
def test_purge_bad_bodies(api: Client, data: bytes, description: str) -> None:
    api.post_messages("q", 1)
    assert_error(api.post("/v2/queues/q/purge", data=data), 400, None, description)
    assert api.get("/v2/queues/q/stats").json()["messages"]["total"] == 1
