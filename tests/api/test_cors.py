"""CORS on the REST API (``[api] cors_allowed_origins``) over real HTTP.

Default: no CORS header at all. With origins configured: a listed origin gets
``Access-Control-Allow-Origin`` on successes *and* errors (a page must be
able to read the error body), preflights are answered with the route's
methods and the headers Zaqar clients send; other origins get nothing.
"""

from __future__ import annotations

import uuid

import requests

from tests.api.conftest import Client, Stack

PAGE = "http://console.example:3000"
OTHER = "http://evil.example"


def preflight(stack: Stack, path: str, origin: str, method: str = "PUT",
              headers: str = "client-id,x-project-id,content-type") -> requests.Response:
    # What a browser sends before a cross-origin PUT with custom headers:
    # no Client-ID, no project -- the pipeline must not demand them.
    return requests.options(stack.base_url + path, timeout=10, headers={
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    })


def test_no_cors_headers_by_default(stack: Stack, api: Client) -> None:
    resp = api.get("/v2/queues", headers={"Origin": PAGE})
    assert resp.status_code == 200
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
    resp = preflight(stack, "/v2/queues/q1", PAGE)
    assert resp.status_code == 200  # OPTIONS is still answered, with Allow
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_preflight_for_listed_origin(stack: Stack, api: Client) -> None:
    stack.override("cors_allowed_origins", [PAGE, "https://other.example"], group="api")
    resp = preflight(stack, "/v2/queues/q1", PAGE)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"PUT", "GET", "DELETE", "PATCH", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"client-id", "x-project-id", "content-type", "x-auth-token"} <= allowed
    assert int(resp.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in resp.headers["Vary"]
    # Methods follow the route: the messages collection has no PUT.
    resp = preflight(stack, "/v2/queues/q1/messages", PAGE, method="POST")
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert "POST" in methods and "PUT" not in methods


def test_actual_requests_for_listed_origin(stack: Stack, api: Client) -> None:
    stack.override("cors_allowed_origins", [PAGE], group="api")
    queue = f"cors-{uuid.uuid4().hex[:8]}"
    resp = api.put(f"/v2/queues/{queue}", headers={"Origin": PAGE})
    assert resp.status_code == 201
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "X-Openstack-Request-Id"} <= exposed
    # Not a preflight: no method/header lists.
    assert "Access-Control-Allow-Methods" not in resp.headers
    # Origins compare without case or a trailing slash.
    resp = api.get(f"/v2/queues/{queue}/stats", headers={"Origin": PAGE.upper() + "/"})
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" in resp.headers


def test_error_replies_carry_cors_headers(stack: Stack, api: Client) -> None:
    stack.override("cors_allowed_origins", [PAGE], group="api")
    # 400 from the pipeline (no Client-ID): the page must be able to read why.
    resp = api.get("/v2/queues", headers={"Origin": PAGE}, drop=("Client-ID",))
    assert resp.status_code == 400
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    assert "Client-Id" in resp.json()["description"]
    # 404 of an unknown route, 405 of an unsupported method.
    resp = api.get("/v2/nowhere", headers={"Origin": PAGE})
    assert resp.status_code == 404
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    resp = api.request("PUT", "/v2/queues", headers={"Origin": PAGE})
    assert resp.status_code == 405
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE
    # 503 from storage.
    resp = api.put("/v2/queues/down-q", headers={"Origin": PAGE})
    assert resp.status_code == 503
    assert resp.headers["Access-Control-Allow-Origin"] == PAGE


def test_other_origin_gets_no_cors_headers(stack: Stack, api: Client) -> None:
    stack.override("cors_allowed_origins", [PAGE], group="api")
    resp = preflight(stack, "/v2/queues/q1", OTHER)
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Methods" not in resp.headers
    resp = api.get("/v2/queues", headers={"Origin": OTHER})
    # Served (CORS is the browser's business), but the browser will hide it.
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    # No Origin header at all (curl, python-zaqarclient): nothing changes.
    resp = api.get("/v2/queues")
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_wildcard_allows_any_origin(stack: Stack, api: Client) -> None:
    stack.override("cors_allowed_origins", ["*"], group="api")
    for origin in (PAGE, OTHER, "null"):
        resp = preflight(stack, "/v2/queues/q1", origin)
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert "Access-Control-Allow-Methods" in resp.headers
