"""The negative test matrix over REST, in keystone mode (docs/security.md).

Every test is one row: an attack a client can mount with headers it
controls, and what Herald must answer. Zaqar's published advisories are
replayed by name (``test_advisory_*``). Each attack is followed by a check
of the victim's data through the victim's own token, so a row fails if the
attack changed anything, not only if the status is wrong.
"""

from __future__ import annotations

import datetime as dt
import http.client

import pytest
import requests

from herald.common import signing
from tests.api.conftest import Client, assert_error
from tests.security.conftest import SIGNING_KEY, Principal, SecuredStack

UNAUTHORIZED = "Unauthorized"


def anonymous(stack: SecuredStack, project: str) -> Client:
    """A client with no token that names ``project`` in its headers."""
    return Client(stack.base_url, project=project)


def assert_untouched(bob: Principal) -> None:
    assert bob.queue_names() == ["vault"]
    assert bob.message_bodies("vault") == [{"n": 0}, {"n": 1}]


# -- Zaqar's advisories ------------------------------------------------------


@pytest.mark.parametrize("value", ["", "x", "true"])
def test_advisory_2161254_extra_spec_header_is_no_credential(
        reset: SecuredStack, bob: Principal, value: str) -> None:
    """Bug 2161254: an EXTRA-SPEC header skipped authentication."""
    intruder = anonymous(reset, bob.project)
    extra = {"EXTRA-SPEC": value}
    assert_error(intruder.get("/v2/queues", headers=extra), 401, UNAUTHORIZED)
    assert_error(intruder.put("/v2/queues/planted", headers=extra), 401, UNAUTHORIZED)
    assert_error(intruder.post("/v2/queues/vault/messages", headers=extra,
                               json_body={"messages": [{"body": "planted"}]}), 401, UNAUTHORIZED)
    assert_error(intruder.delete("/v2/queues/vault", headers=extra), 401, UNAUTHORIZED)
    assert_untouched(bob)


def test_advisory_2164987_empty_url_signature_is_no_credential(
        reset: SecuredStack, bob: Principal) -> None:
    """Bug 2164987: an empty URL-Signature header skipped authentication."""
    intruder = anonymous(reset, bob.project)
    empty = {"URL-Signature": "", "URL-Methods": "GET,POST,DELETE",
             "URL-Paths": "/v2/queues/vault/messages", "URL-Expires": "2099-01-01T00:00:00"}
    assert_error(intruder.get("/v2/queues/vault/messages", headers=empty), 401, UNAUTHORIZED)
    assert_error(intruder.post("/v2/queues/vault/messages", headers=empty,
                               json_body={"messages": [{"body": "planted"}]}), 401, UNAUTHORIZED)
    assert_untouched(bob)


# -- every route needs a token -------------------------------------------------

PROTECTED = [
    ("GET", "/v2"), ("GET", "/v2/"), ("GET", "/v2/ping"), ("HEAD", "/v2/ping"),
    ("GET", "/v2/health"), ("GET", "/openapi.json"), ("GET", "/v2/queues"),
    ("PUT", "/v2/queues/q"), ("GET", "/v2/queues/q"), ("HEAD", "/v2/queues/q"),
    ("DELETE", "/v2/queues/q"),
    ("GET", "/v2/queues/q/stats"), ("POST", "/v2/queues/q/purge"),
    ("POST", "/v2/queues/q/share"), ("GET", "/v2/queues/q/messages"),
    ("POST", "/v2/queues/q/messages"), ("GET", "/v2/queues/q/messages/m"),
    ("GET", "/v2/queues/q/messages/m/deliveries"), ("POST", "/v2/queues/q/claims"),
    ("GET", "/v2/queues/q/claims/c"), ("GET", "/v2/queues/q/subscriptions"),
    ("PUT", "/v2/queues/q/subscriptions/s/confirm"), ("GET", "/v2/topics"),
    ("GET", "/v2/pools"), ("GET", "/v2/flavors"), ("PUT", "/v2/flavors/f"),
    # Unknown paths and methods: 401 before 404 / 405, so no route can be
    # mapped without a token.
    ("GET", "/v2/nothing-here"), ("GET", "/admin"), ("TRACE", "/v2/queues"),
    ("PATCH", "/v2/ping"), ("OPTIONS", "/v2/queues"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_needs_a_token(reset: SecuredStack, method: str, path: str) -> None:
    resp = anonymous(reset, "any").request(method, path)
    assert resp.status_code == 401, (resp.status_code, resp.text)
    if method != "HEAD":
        assert resp.json()["title"] == UNAUTHORIZED


@pytest.mark.parametrize(("path", "status"), [("/", 300), ("/healthz", 200), ("/readyz", 200)])
def test_only_the_public_routes_answer_without_a_token(reset: SecuredStack, path: str,
                                                       status: int) -> None:
    resp = requests.get(reset.base_url + path, timeout=10)
    assert resp.status_code == status, resp.text


def test_metrics_is_not_on_the_api_port(reset: SecuredStack, alice: Principal) -> None:
    # /metrics lives on each process's operator listener ([metrics] port),
    # never on the API port: here it is an unknown route like any other --
    # 401 without a token, the route-not-found 404 with one -- with the
    # very bodies /no-such-route gets, so nothing tells them apart.
    for path in ("/metrics", "/v2/metrics"):
        resp = anonymous(reset, alice.project).get(path)
        unknown = anonymous(reset, alice.project).get("/no-such-route")
        assert resp.status_code == unknown.status_code == 401
        assert resp.json() == unknown.json()
        resp, unknown = alice.rest().get(path), alice.rest().get("/no-such-route")
        assert resp.status_code == unknown.status_code == 404, resp.text
        assert resp.json() == unknown.json() and "herald_" not in resp.text


def test_a_cors_preflight_answers_only_the_methods(reset: SecuredStack) -> None:
    reset.override("cors_allowed_origins", ["https://app.example"], group="api")
    resp = requests.options(reset.base_url + "/v2/queues/q/messages", timeout=10, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert resp.status_code == 200
    assert resp.text == ""


# -- headers a client controls -------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"X-Identity-Status": "Confirmed", "X-Roles": "admin"},
    {"X-User-Id": "admin", "X-Project-Id": "victim", "X-Roles": "admin"},
    {"X-Service-Token": "service-token"},
    {"X-Auth-Token": ""},
    {"X-Storage-Token": "anything", "X-Subject-Token": "anything"},
], ids=["identity-status", "user-and-roles", "service-token", "empty-token",
        "other-token-headers"])
def test_forged_identity_headers_are_no_credential(reset: SecuredStack, bob: Principal,
                                                   headers: dict[str, str]) -> None:
    intruder = anonymous(reset, bob.project)
    assert_error(intruder.get("/v2/queues", headers=headers), 401, UNAUTHORIZED)
    assert_error(intruder.post("/v2/queues/vault/messages", headers=headers,
                               json_body={"messages": [{"body": "planted"}]}), 401, UNAUTHORIZED)
    assert_untouched(bob)


@pytest.mark.parametrize("header", ["X-Project-ID", "X-Tenant-Id", "X-Tenant"])
def test_a_project_header_does_not_move_a_token(alice: Principal, bob: Principal,
                                                header: str) -> None:
    """A token for A naming B in any project header acts in A, never in B."""
    intruder = alice.rest()
    forged = {header: bob.project}
    drop = () if header == "X-Project-ID" else ("X-Project-ID",)
    assert intruder.get("/v2/queues", headers=forged, drop=drop).json()["queues"] == []
    assert intruder.get("/v2/queues/vault/messages?echo=true", headers=forged,
                        drop=drop).json()["messages"] == []
    assert intruder.delete("/v2/queues/vault", headers=forged, drop=drop).status_code == 204
    assert intruder.post("/v2/queues/vault/messages", headers=forged, drop=drop,
                         json_body={"messages": [{"body": "planted"}]}).status_code == 201
    assert_untouched(bob)
    # The post landed in A's own project.
    assert alice.message_bodies("vault") == ["planted"]


def test_x_roles_does_not_make_a_member_an_admin(reset: SecuredStack, alice: Principal) -> None:
    reset.override("admin_mode", True)
    reset.override("pooling", True)
    intruder = alice.rest()
    admin = {"X-Roles": "admin"}
    for method, path in [("GET", "/v2/health"), ("GET", "/v2/pools"),
                         ("PUT", "/v2/pools/p1"), ("PUT", "/v2/flavors/f1"),
                         ("DELETE", "/v2/flavors/f1")]:
        body = {"uri": "sqlite://", "weight": 1} if "pools" in path else {"pool_list": ["p1"]}
        resp = intruder.request(method, path, headers=admin,
                                json_body=body if method == "PUT" else None)
        assert_error(resp, 403, "Not authorized")


def test_admin_routes_serve_the_tokens_admin(reset: SecuredStack) -> None:
    reset.override("admin_mode", True)
    project = "p-admin"
    admin = Principal(reset, project, reset.keystone.issue(project, ["admin"])).rest()
    assert admin.get("/v2/health").status_code == 200


def test_two_tokens_in_one_request_are_refused(alice: Principal, bob: Principal) -> None:
    """``X-Auth-Token`` twice: whichever layer read which one, neither is used."""
    for tokens in ([alice.token, bob.token], [bob.token, alice.token],
                   [bob.token, bob.token]):
        status, body = _get_with_repeated_header(alice.stack, "/v2/queues", "X-Auth-Token",
                                                 tokens, bob.project)
        assert status == 401, body
    assert_untouched(bob)


def _get_with_repeated_header(stack: SecuredStack, path: str, name: str, values: list[str],
                              project: str) -> tuple[int, bytes]:
    """GET with header ``name`` sent once per value (requests would fold them)."""
    host, port = stack.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path)
        conn.putheader("Client-ID", "3381af92-2b9e-11e3-b191-71861300734c")
        conn.putheader("X-Project-ID", project)
        for value in values:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("client_id", [None, "", "not-a-uuid", "3381af92-2b9e-11e3-b191"])
def test_client_id_forms_without_a_token_are_401(reset: SecuredStack, bob: Principal,
                                                 client_id: str | None) -> None:
    """Authentication comes before the Client-ID check (rest-v2.md §0.2)."""
    intruder = anonymous(reset, bob.project)
    drop = ("Client-ID",) if client_id is None else ()
    extra = {} if client_id is None else {"Client-ID": client_id}
    assert_error(intruder.get("/v2/queues/vault/messages", headers=extra, drop=drop), 401)
    assert_untouched(bob)


def test_client_id_forms_with_a_token_are_checked(alice: Principal) -> None:
    client = alice.rest()
    assert_error(client.get("/v2/queues", drop=("Client-ID",)), 400, "Missing header value")
    assert_error(client.get("/v2/queues", headers={"Client-ID": "nope"}), 400,
                 "Wrong UUID value")


# -- tokens --------------------------------------------------------------------


def test_an_expired_token_is_401(reset: SecuredStack, bob: Principal) -> None:
    expired = reset.keystone.issue(bob.project, lifetime=-60)
    intruder = Principal(reset, bob.project, expired).rest()
    assert_error(intruder.get("/v2/queues"), 401, UNAUTHORIZED)
    assert_error(intruder.delete("/v2/queues/vault"), 401, UNAUTHORIZED)
    assert_untouched(bob)


def test_a_revoked_token_is_401(reset: SecuredStack, bob: Principal) -> None:
    token = reset.keystone.issue(bob.project)
    holder = Principal(reset, bob.project, token).rest()
    assert holder.get("/v2/queues").status_code == 200
    reset.keystone.revoke(token)
    assert_error(holder.get("/v2/queues"), 401, UNAUTHORIZED)
    assert_error(holder.delete("/v2/queues/vault"), 401, UNAUTHORIZED)
    assert_untouched(bob)


def test_a_token_for_another_project_sees_nothing(alice: Principal, bob: Principal) -> None:
    intruder = alice.rest(project_header=bob.project)
    assert intruder.get("/v2/queues/vault/stats").json()["messages"]["total"] == 0
    assert intruder.get("/v2/queues/vault/messages?echo=true").json()["messages"] == []
    assert intruder.post("/v2/queues/vault/claims", json_body={"ttl": 60}).status_code == 204
    assert_untouched(bob)


def test_a_token_scoped_to_no_project_is_401(reset: SecuredStack, bob: Principal) -> None:
    """A domain-scoped token is valid but names no project: the header must not pick one."""
    token = reset.keystone.issue_domain_scoped(["admin"])
    intruder = Principal(reset, bob.project, token).rest()
    assert_error(intruder.get("/v2/queues"), 401, UNAUTHORIZED)
    assert_error(intruder.delete("/v2/queues/vault"), 401, UNAUTHORIZED)
    assert_untouched(bob)


# -- pre-signed URLs ------------------------------------------------------------


def _share(owner: Principal, queue: str, methods: list[str],
           paths: list[str] | None = None) -> dict[str, str]:
    body: dict[str, object] = {"methods": methods}
    if paths is not None:
        body["paths"] = paths
    resp = owner.rest().post(f"/v2/queues/{queue}/share", json_body=body)
    assert resp.status_code == 200, resp.text
    share = resp.json()
    return {"URL-Signature": share["signature"], "URL-Expires": share["expires"],
            "URL-Methods": ",".join(share["methods"]), "URL-Paths": ",".join(share["paths"]),
            "X-Project-ID": share["project"]}


def test_a_signed_url_serves_what_it_signs(reset: SecuredStack, bob: Principal) -> None:
    signed = _share(bob, "vault", ["GET"])
    guest = anonymous(reset, bob.project)
    resp = guest.get("/v2/queues/vault/messages?echo=true", headers=signed)
    assert resp.status_code == 200, resp.text
    assert [m["body"] for m in resp.json()["messages"]] == [{"n": 0}, {"n": 1}]


def test_a_signed_url_for_another_queue_is_404(reset: SecuredStack, bob: Principal) -> None:
    bob.rest().put("/v2/queues/other")
    bob.rest().post_messages("other", 1)
    signed = _share(bob, "vault", ["GET", "POST"])
    guest = anonymous(reset, bob.project)
    assert_error(guest.get("/v2/queues/other/messages?echo=true", headers=signed), 404)
    assert_error(guest.post("/v2/queues/other/messages", headers=signed,
                            json_body={"messages": [{"body": "planted"}]}), 404)
    assert bob.message_bodies("other") == [{"n": 0}]


def test_a_signed_queue_name_is_not_a_pattern(reset: SecuredStack, bob: Principal) -> None:
    """The reference searched signed paths as regular expressions: ``a.b`` matched ``aXb``."""
    bob.rest().put("/v2/queues/aXb")
    bob.rest().post_messages("aXb", 1)
    signed = _share(bob, "a.b", ["GET", "DELETE"])
    guest = anonymous(reset, bob.project)
    assert_error(guest.get("/v2/queues/aXb/messages?echo=true", headers=signed), 404)
    assert guest.get("/v2/queues/a.b/messages", headers=signed).status_code == 200
    assert bob.message_bodies("aXb") == [{"n": 0}]


def test_a_signed_url_for_another_method_is_404(reset: SecuredStack, bob: Principal) -> None:
    signed = _share(bob, "vault", ["GET"])
    guest = anonymous(reset, bob.project)
    assert_error(guest.post("/v2/queues/vault/messages", headers=signed,
                            json_body={"messages": [{"body": "planted"}]}), 404)
    assert_error(guest.delete("/v2/queues/vault/messages?pop=2", headers=signed), 404)
    # The methods header is signed: adding a method breaks the signature.
    widened = {**signed, "URL-Methods": "DELETE,GET"}
    assert_error(guest.delete("/v2/queues/vault/messages?pop=2", headers=widened), 404)
    assert_untouched(bob)


def test_a_signed_url_for_another_resource_is_404(reset: SecuredStack, bob: Principal) -> None:
    signed = _share(bob, "vault", ["GET", "DELETE"])
    guest = anonymous(reset, bob.project)
    assert_error(guest.get("/v2/queues/vault/subscriptions", headers=signed), 404)
    assert_error(guest.get("/v2/queues/vault/stats", headers=signed), 404)
    assert_error(guest.delete("/v2/queues/vault", headers=signed), 404)
    assert_untouched(bob)


def test_a_signed_url_for_another_project_is_404(reset: SecuredStack, alice: Principal,
                                                 bob: Principal) -> None:
    """Alice signs for her own project, then names Bob's: the project is signed."""
    signed = _share(alice, "vault", ["GET", "POST"])
    guest = anonymous(reset, bob.project)
    moved = {**signed, "X-Project-ID": bob.project}
    assert_error(guest.get("/v2/queues/vault/messages?echo=true", headers=moved), 404)
    assert_error(guest.post("/v2/queues/vault/messages", headers=moved,
                            json_body={"messages": [{"body": "planted"}]}), 404)
    # Another project header beside the signed one does not move it either.
    for header in ("X-Tenant-Id", "X-Tenant"):
        resp = guest.post("/v2/queues/vault/messages", headers={**signed, header: bob.project},
                          json_body={"messages": [{"body": "alice's"}]})
        assert resp.status_code == 201, resp.text
    assert_untouched(bob)


def test_a_signed_url_without_a_project_is_404(reset: SecuredStack, bob: Principal) -> None:
    """A signature over no project must not let a legacy project header choose one."""
    expires = signing.format_expires(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    paths = ["/v2/queues/vault/messages"]
    unsigned_project = {
        "URL-Signature": signing.signature(SIGNING_KEY, paths, ["GET"], None, expires),
        "URL-Expires": expires, "URL-Methods": "GET", "URL-Paths": paths[0],
        "X-Tenant-Id": bob.project}
    guest = anonymous(reset, bob.project)
    resp = guest.get("/v2/queues/vault/messages?echo=true", headers=unsigned_project,
                     drop=("X-Project-ID",))
    assert_error(resp, 404)


def test_an_expired_or_forged_signature_is_404(reset: SecuredStack, bob: Principal) -> None:
    signed = _share(bob, "vault", ["GET"])
    guest = anonymous(reset, bob.project)
    past = signing.format_expires(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    expired = {**signed, "URL-Expires": past, "URL-Signature": signing.signature(
        SIGNING_KEY, [signed["URL-Paths"]], ["GET"], bob.project, past)}
    assert_error(guest.get("/v2/queues/vault/messages", headers=expired), 404)
    assert_error(guest.get("/v2/queues/vault/messages",
                           headers={**signed, "URL-Signature": "0" * 64}), 404)
    wrong_key = {**signed, "URL-Signature": signing.signature(
        "guessed", [signed["URL-Paths"]], ["GET"], bob.project, signed["URL-Expires"])}
    assert_error(guest.get("/v2/queues/vault/messages", headers=wrong_key), 404)


def test_a_signed_subscription_confirmation_is_the_only_tokenless_write(
        reset: SecuredStack, bob: Principal) -> None:
    """What Zaqar's EXTRA-SPEC exemption served (a subscriber confirming without a
    token) is a pre-signed PUT on exactly one subscription's confirm path."""
    created = bob.rest().post("/v2/queues/vault/subscriptions",
                              json_body={"subscriber": "http://127.0.0.1:9/hook", "ttl": 600})
    assert created.status_code == 201, created.text
    sid = created.json()["subscription_id"]
    path = f"/v2/queues/vault/subscriptions/{sid}/confirm"
    expires = signing.format_expires(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    signed = {"URL-Signature": signing.signature(SIGNING_KEY, [path], ["PUT"], bob.project,
                                                 expires),
              "URL-Expires": expires, "URL-Methods": "PUT", "URL-Paths": path}
    guest = anonymous(reset, bob.project)
    assert guest.put(path, headers=signed, json_body={"confirmed": True}).status_code == 204
    assert bob.rest().get(f"/v2/queues/vault/subscriptions/{sid}").json()["confirmed"] is True
    # The same signature reaches nothing else.
    assert_error(guest.get(f"/v2/queues/vault/subscriptions/{sid}", headers=signed), 404)
    assert_error(guest.delete(f"/v2/queues/vault/subscriptions/{sid}", headers=signed), 404)
    assert_untouched(bob)


def test_signed_url_key_rotation(reset: SecuredStack, bob: Principal) -> None:
    """A URL signed with a key being rotated out verifies until the key is dropped."""
    signed = _share(bob, "vault", ["GET"])
    guest = anonymous(reset, bob.project)
    reset.override("secret_key", "the-new-key", group="signed_url")
    assert_error(guest.get("/v2/queues/vault/messages", headers=signed), 404)
    reset.override("previous_secret_keys", [SIGNING_KEY], group="signed_url")
    assert guest.get("/v2/queues/vault/messages", headers=signed).status_code == 200
    # New URLs are signed with the new key only.
    fresh = _share(bob, "vault", ["GET"])
    assert fresh["URL-Signature"] == signing.signature(
        "the-new-key", [fresh["URL-Paths"]], ["GET"], bob.project, fresh["URL-Expires"])
    assert guest.get("/v2/queues/vault/messages", headers=fresh).status_code == 200
    # Without a current key nothing verifies, former keys included.
    reset.override("secret_key", None, group="signed_url")
    assert_error(guest.get("/v2/queues/vault/messages", headers=signed), 404)
