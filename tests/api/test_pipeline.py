"""REST request pipeline over real HTTP (rest-v2.md §0.1-0.5): routing, 405s,
content type, Accept, Client-ID, project, queue names, request ids, and the
mapping of storage failures to 503/500."""

from __future__ import annotations

import socket
import uuid

import pytest
import requests

from tests.api.conftest import Client, Stack, assert_error

# Every implemented (method, path) of this release, with a valid queue name.
ENDPOINTS = [
    ("GET", "/v2/"), ("GET", "/v2/ping"), ("HEAD", "/v2/ping"), ("GET", "/v2/queues"),
    ("PUT", "/v2/queues/q"), ("GET", "/v2/queues/q"), ("PATCH", "/v2/queues/q"),
    ("DELETE", "/v2/queues/q"), ("GET", "/v2/queues/q/stats"), ("POST", "/v2/queues/q/purge"),
    ("POST", "/v2/queues/q/messages"), ("GET", "/v2/queues/q/messages"),
    ("DELETE", "/v2/queues/q/messages"), ("GET", "/v2/queues/q/messages/m"),
    ("DELETE", "/v2/queues/q/messages/m"), ("POST", "/v2/queues/q/claims"),
    ("GET", "/v2/queues/q/claims/c"), ("PATCH", "/v2/queues/q/claims/c"),
    ("DELETE", "/v2/queues/q/claims/c"),
]
QUEUE_ENDPOINTS = [(m, p) for m, p in ENDPOINTS if p.startswith("/v2/queues/q")]


# -- routing ---------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/v2/queues/"), ("GET", "/v2/queues/q/"),
    ("GET", "/v3/"), ("GET", "/v2/queues/q/messages/m/x"), ("POST", "/v2/queues/q/share/x"),
    ("GET", "/v2/queues/q/subscriptions/s/x"), ("GET", "/v2/pools"), ("GET", "/v2/flavors"),
    ("GET", "/v2/topic"), ("TRACE", "/nope"), ("DELETE", "/v2/queues/q/claims/"),
])
def test_unknown_paths_are_404(api: Client, method: str, path: str) -> None:
    body = assert_error(api.request(method, path), 404, "404 Not Found")
    assert body == {"title": "404 Not Found"}


def test_unknown_path_is_404_even_without_headers(stack: Stack) -> None:
    resp = requests.get(stack.base_url + "/v2/nothing/here", timeout=10)
    assert_error(resp, 404, "404 Not Found")


@pytest.mark.parametrize("method,path,allow", [
    ("HEAD", "/v2/queues/q/stats", "GET, OPTIONS"),
    ("POST", "/v2/queues/q", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
    ("DELETE", "/v2/queues", "GET, OPTIONS"),
    ("PUT", "/v2/queues/q/messages", "GET, POST, DELETE, OPTIONS"),
    ("POST", "/v2/queues/q/messages/m", "GET, DELETE, OPTIONS"),
    ("GET", "/v2/queues/q/claims", "POST, OPTIONS"),
    ("PUT", "/v2/queues/q/claims/c", "GET, PATCH, DELETE, OPTIONS"),
    ("DELETE", "/v2/queues/q/stats", "GET, OPTIONS"),
    ("GET", "/v2/queues/q/purge", "POST, OPTIONS"),
    ("POST", "/v2/ping", "GET, HEAD, OPTIONS"),
    ("DELETE", "/", "GET, OPTIONS"),
    ("TRACE", "/v2/queues", "GET, OPTIONS"),
])
def test_unimplemented_methods_are_405_with_allow(api: Client, method: str, path: str,
                                                  allow: str) -> None:
    resp = api.request(method, path)
    assert resp.status_code == 405, resp.text
    assert resp.headers["Allow"] == allow
    if method != "HEAD":
        assert resp.json()["title"] == "405 Method Not Allowed"


def test_405_wins_over_header_checks(api: Client) -> None:
    resp = api.request("POST", "/v2/queues/bad name!", drop=("Client-ID", "X-Project-ID"))
    assert resp.status_code == 405


def test_options_lists_methods(api: Client) -> None:
    resp = api.request("OPTIONS", "/v2/queues/q/messages", drop=("Client-ID",))
    assert resp.status_code == 200
    assert resp.headers["Allow"] == "GET, POST, DELETE, OPTIONS"
    assert resp.content == b""


@pytest.mark.parametrize("path", ["/v2/", "/v2"])
def test_home_document_on_both_paths(api: Client, path: str) -> None:
    resp = api.get(path)
    assert resp.status_code == 200
    assert "rel/queues" in resp.json()["resources"]


# -- step 3: form content type -------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded",
                                          "APPLICATION/X-WWW-FORM-URLENCODED"])
def test_form_content_type_is_400(api: Client, content_type: str) -> None:
    resp = api.post("/v2/queues/q/messages", data="a=b",
                    headers={"Content-Type": content_type})
    assert_error(resp, 400, "Invalid Content-Type")


def test_form_content_type_without_body_length_is_accepted(api: Client) -> None:
    # requests sends no Content-Length for a GET without body.
    resp = api.get("/v2/queues", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200


def test_form_content_type_beats_accept_and_client_id(api: Client) -> None:
    resp = api.put("/v2/queues/q", data="a=b", drop=("Client-ID",),
                   headers={"Content-Type": "application/x-www-form-urlencoded",
                            "Accept": "text/html"})
    assert_error(resp, 400, "Invalid Content-Type")


# -- step 4: Accept ------------------------------------------------------------


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/json;q=0"])
def test_unacceptable_accept_is_406(api: Client, accept: str) -> None:
    body = assert_error(api.get("/v2/queues", headers={"Accept": accept}), 406,
                        "406 Not Acceptable", "application/json")
    assert body["link"]["rel"] == "help"
    assert set(body["link"]) == {"text", "href", "rel"}


def test_406_applies_to_versions_and_beats_client_id(api: Client) -> None:
    assert_error(api.get("/", headers={"Accept": "text/html"}), 406)
    resp = api.get("/v2/queues", headers={"Accept": "text/html"}, drop=("Client-ID",))
    assert_error(resp, 406)


@pytest.mark.parametrize("accept", [None, "*/*", "application/*", "text/html, application/json"])
def test_acceptable_accept(api: Client, accept: str | None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    drop = ("Accept",) if accept is None else ()
    assert api.get("/v2/queues", headers=headers, drop=drop).status_code == 200


# -- step 5: Client-ID -------------------------------------------------------------


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_v2_endpoint_requires_client_id(api: Client, method: str, path: str) -> None:
    resp = api.request(method, path, drop=("Client-ID",))
    assert resp.status_code == 400
    if method != "HEAD":
        assert resp.json() == {"title": "Missing header value",
                               "description": 'The "Client-Id" header is required.'}


@pytest.mark.parametrize("client_id", ["", "not-a-uuid", "12345",
                                       "3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9",  # one digit short
                                       "3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d00"])  # two too many
def test_malformed_client_id(api: Client, client_id: str) -> None:
    resp = api.get("/v2/queues", headers={"Client-ID": client_id})
    assert_error(resp, 400, "Wrong UUID value", "Malformed hexadecimal UUID.")


@pytest.mark.parametrize("client_id", [
    # fixed values: pytest-xdist needs the same test ids in every worker
    "6f1d2c3b4a594e8d9c7b6a5f4e3d2c1b", "0b8e7d6c-5f4a-4b3c-9d2e-1f0a9b8c7d6e",
    "0B8E7D6C-5F4A-4B3C-9D2E-1F0A9B8C7D6E", "{2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d}",
    "urn:uuid:7c6b5a49-3827-4165-8f4e-3d2c1b0a9f8e",
])
def test_client_id_uuid_forms(api: Client, client_id: str) -> None:
    assert api.get("/v2/queues", headers={"Client-ID": client_id}).status_code == 200


@pytest.mark.parametrize("client_id,ok", [
    ("short", False), ("x" * 9, False), ("x" * 10, True), ("not a uuid at all", True),
    ("x" * 36, True), ("x" * 37, False),
])
def test_client_id_length_when_uuid_check_is_off(stack: Stack, api: Client, client_id: str,
                                                 ok: bool) -> None:
    stack.override("client_id_uuid_safe", "off", group="limits")
    resp = api.get("/v2/queues", headers={"Client-ID": client_id})
    if ok:
        assert resp.status_code == 200
    else:
        assert_error(resp, 400,
                     "Length of client id must be at least 10 and no greater than 36.")


def test_versions_needs_no_client_id_or_project(stack: Stack) -> None:
    resp = requests.get(stack.base_url + "/", timeout=10)
    assert resp.status_code == 300
    assert "versions" in resp.json()


# -- step 6: project -------------------------------------------------------------


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_v2_endpoint_requires_a_project(api: Client, method: str, path: str) -> None:
    resp = api.request(method, path, drop=("X-Project-ID",))
    assert resp.status_code == 400
    if method != "HEAD":
        assert resp.json() == {"title": "Project-Id Missing",
                               "description": "The header X-PROJECT-ID was missing"}


def test_empty_project_header(api: Client) -> None:
    assert_error(api.get("/v2/queues", headers={"X-Project-ID": ""}), 400,
                 "Empty project header not allowed")


def test_client_id_is_checked_before_project(api: Client) -> None:
    resp = api.get("/v2/queues", drop=("Client-ID", "X-Project-ID"))
    assert_error(resp, 400, "Missing header value")


@pytest.mark.parametrize("header", ["X-Project-Id", "x-project-id", "X-Tenant-Id", "X-Tenant"])
def test_project_header_spellings(api: Client, header: str) -> None:
    assert api.put("/v2/queues/spelled").status_code == 201
    resp = api.get("/v2/queues", drop=("X-Project-ID",), headers={header: api.project})
    assert resp.status_code == 200
    assert [q["name"] for q in resp.json()["queues"]] == ["spelled"]


def test_projects_are_isolated(stack: Stack, api: Client) -> None:
    other = Client(stack.base_url)
    api.put("/v2/queues/mine")
    api.post_messages("mine", 1)
    assert other.get("/v2/queues").json()["queues"] == []
    assert other.get("/v2/queues/mine/stats").json()["messages"]["total"] == 0


# -- step 7: queue name ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a" * 65, "bad!", "sp%20ace", "%C3%A9t%C3%A9", "a%2Fb",
                                  "%FF", "q*"])
@pytest.mark.parametrize("method,suffix", [("PUT", ""), ("GET", ""), ("DELETE", ""),
                                           ("GET", "/messages"), ("POST", "/claims"),
                                           ("GET", "/stats")])
def test_invalid_queue_names(api: Client, name: str, method: str, suffix: str) -> None:
    resp = api.request(method, f"/v2/queues/{name}{suffix}")
    assert_error(resp, 400, "Invalid queue identification",
                 "The format of the submitted queue name or project id is not valid.")


@pytest.mark.parametrize("name", ["a" * 64, "A-b_c.d", "0", "._-"])
def test_valid_queue_names(api: Client, name: str) -> None:
    assert api.put(f"/v2/queues/{name}").status_code == 201


def test_project_id_longer_than_256_is_invalid_queue_identification(api: Client) -> None:
    resp = api.put("/v2/queues/q", headers={"X-Project-ID": "p" * 257})
    assert_error(resp, 400, "Invalid queue identification")
    assert api.put("/v2/queues/q", headers={"X-Project-ID": "p" * 256}).status_code == 201


def test_queue_name_checked_after_project(api: Client) -> None:
    assert_error(api.put("/v2/queues/bad!", drop=("X-Project-ID",)), 400, "Project-Id Missing")


# -- request ids, errors ---------------------------------------------------------


def test_request_id_is_generated_and_returned(api: Client) -> None:
    first = api.get("/v2/queues").headers["X-Openstack-Request-Id"]
    second = api.get("/nope").headers["X-OpenStack-Request-ID"]
    assert first.startswith("req-") and uuid.UUID(first[4:])
    assert second.startswith("req-") and second != first


def test_incoming_request_id_is_kept(stack: Stack, api: Client) -> None:
    rid = f"req-{uuid.uuid4()}"
    resp = api.put("/v2/queues/traced", headers={"X-Openstack-Request-Id": rid})
    assert resp.headers["X-Openstack-Request-Id"] == rid
    # ...and it is the request id storage sees in the RPC context.
    ctxt, method, _ = stack.caller.calls[-1]
    assert (method, ctxt.request_id) == ("queue_create", rid)
    assert ctxt.project_id == api.project and ctxt.client_id == api.client_id


def test_unsafe_incoming_request_id_is_replaced(api: Client) -> None:
    resp = api.get("/v2/queues", headers={"X-Openstack-Request-Id": "x" * 200})
    assert resp.headers["X-Openstack-Request-Id"].startswith("req-")


def test_error_responses_carry_the_request_id(api: Client) -> None:
    resp = api.get("/v2/queues", drop=("Client-ID",))
    assert resp.headers["X-Openstack-Request-Id"].startswith("req-")


def test_roles_reach_the_context(stack: Stack, api: Client) -> None:
    api.get("/v2/queues/q", headers={"X-Roles": "member, admin,reader"})
    ctxt, _, _ = stack.caller.calls[-1]
    assert ctxt.roles == ("member", "admin", "reader")


@pytest.mark.parametrize("method,path", QUEUE_ENDPOINTS)
def test_storage_unavailable_is_503(api: Client, method: str, path: str) -> None:
    path = path.replace("/v2/queues/q", "/v2/queues/down-q")
    data = None
    if method == "PATCH" and path.endswith("down-q"):
        data = b'[{"op": "add", "path": "/metadata/a", "value": 1}]'
        resp = api.patch(path, data=data, headers={
            "Content-Type": "application/openstack-messaging-v2.0-json-patch"})
    elif method == "POST" and path.endswith("/messages"):
        resp = api.post(path, json_body={"messages": [{"body": 1}]})
    elif method == "PATCH":
        resp = api.patch(path, json_body={"ttl": 100})
    elif method == "DELETE" and path.endswith("/messages"):
        resp = api.delete(path + "?pop=1")
    else:
        resp = api.request(method, path)
    body = assert_error(resp, 503, "Service temporarily unavailable",
                        "Please try again in a few seconds.")
    # The description says what failed, not how the RPC failed.
    assert "did not answer" not in body["description"]


def test_queue_create_503_wording(api: Client) -> None:
    resp = api.put("/v2/queues/down-q")
    assert resp.json()["description"] == (
        "Queue could not be created. Please try again in a few seconds.")


def test_unexpected_storage_failure_is_500(api: Client) -> None:
    resp = api.get("/v2/queues/bug-q/stats")
    body = assert_error(resp, 500, "Internal server error")
    assert "oops" in body["description"]


def test_oversized_body_is_refused_before_reading_it(stack: Stack, api: Client) -> None:
    size = stack.conf.api.max_body_size + 1
    with socket.create_connection(("127.0.0.1", stack.service.port), timeout=10) as sock:
        sock.sendall((f"POST /v2/queues/q/messages HTTP/1.1\r\nHost: x\r\n"
                      f"Client-ID: {api.client_id}\r\nX-Project-ID: {api.project}\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 400 Bad Request"
