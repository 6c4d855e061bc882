"""The negative test matrix over the websocket, in keystone mode (docs/security.md).

The same attacks as ``test_rest_matrix`` where the websocket has them, plus
the websocket's own: a connection authenticated for one project naming
another in its frames (Zaqar bug 2161402), a token revoked or refused after
the connection authenticated. Each row checks the victim's data through the
victim's own REST token afterwards. Frames go as JSON text and as msgpack.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from herald.common import signing
from herald.ws_gateway.dispatch import FOREIGN_PROJECT
from tests.security.conftest import SIGNING_KEY, Principal, SecuredStack
from tests.ws.client import WSClient

NOT_AUTHENTIFIED = (403, {"error": "Not authentified."})
FOREIGN = (403, {"error": FOREIGN_PROJECT})

# Every action that reaches storage, with a body aimed at the victim's queue.
ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("queue_list", {}),
    ("queue_create", {"queue_name": "planted"}),
    ("queue_get", {"queue_name": "vault"}),
    ("queue_get_stats", {"queue_name": "vault"}),
    ("queue_delete", {"queue_name": "vault"}),
    ("queue_purge", {"queue_name": "vault"}),
    ("message_list", {"queue_name": "vault", "echo": True}),
    ("message_post", {"queue_name": "vault", "messages": [{"body": "planted"}]}),
    ("message_delete_many", {"queue_name": "vault", "pop": 2}),
    ("claim_create", {"queue_name": "vault", "ttl": 60, "grace": 60}),
    ("subscription_list", {"queue_name": "vault"}),
    ("subscription_create", {"queue_name": "vault", "ttl": 600}),
]

binary_or_text = pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])


def frame_with_pairs(action: str, headers: list[tuple[str, str]]) -> str:
    """A JSON text frame whose headers object may repeat a key (json.dumps cannot)."""
    pairs = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in headers)
    return f'{{"action": {json.dumps(action)}, "headers": {{{pairs}}}}}'


def assert_untouched(bob: Principal) -> None:
    assert bob.queue_names() == ["vault"]
    assert bob.message_bodies("vault") == [{"n": 0}, {"n": 1}]
    subscriptions = bob.rest().get("/v2/queues/vault/subscriptions").json()
    assert subscriptions["subscriptions"] == []


# -- Zaqar's advisories ------------------------------------------------------


@binary_or_text
@pytest.mark.parametrize(("action", "body"), ACTIONS, ids=[a for a, _ in ACTIONS])
def test_advisory_2161402_a_token_for_a_reaches_only_a(
        alice: Principal, bob: Principal, action: str, body: dict[str, Any],
        binary: bool) -> None:
    """Bug 2161402: a connection authenticated for A acted in the frame's project B."""
    with alice.ws(project_header=bob.project, binary=binary) as intruder:
        assert intruder.status_body(action, body) == FOREIGN
    assert_untouched(bob)


def test_advisory_2161402_a_frame_may_repeat_its_own_project(alice: Principal,
                                                             bob: Principal) -> None:
    with alice.ws() as owner:
        assert owner.status_body("queue_create", {"queue_name": "mine"})[0] == 201
        assert owner.status_body("queue_list") == (200, {"queues": [{"name": "mine"}]})
        # A frame that names no project (the schema allows it for some
        # actions) still acts in the token's project only.
        headers = {k: v for k, v in owner.headers.items() if k != "X-Project-ID"}
        assert owner.status_body("ping_node", {}, headers=headers)[0] in (200, 204, 400)
    assert alice.queue_names() == ["mine"]
    assert_untouched(bob)


@pytest.mark.parametrize("value", ["", "x"])
def test_advisory_2161254_extra_spec_header_is_no_credential(
        reset: SecuredStack, bob: Principal, value: str) -> None:
    with WSClient(reset.ws_url, bob.project) as intruder:
        headers = {**intruder.headers, "EXTRA-SPEC": value}
        for action, body in ACTIONS:
            assert intruder.status_body(action, body, headers=headers) == NOT_AUTHENTIFIED
    assert_untouched(bob)


def test_advisory_2164987_empty_url_signature_is_no_credential(
        reset: SecuredStack, bob: Principal) -> None:
    with WSClient(reset.ws_url, bob.project) as intruder:
        headers = {**intruder.headers, "URL-Signature": "", "URL-Methods": ["GET", "POST"],
                   "URL-Paths": ["/v2/queues/vault/messages"],
                   "URL-Expires": "2099-01-01T00:00:00"}
        for action, body in ACTIONS:
            assert intruder.status_body(action, body, headers=headers) == NOT_AUTHENTIFIED
    assert_untouched(bob)


# -- every action needs an authenticated connection ---------------------------


@binary_or_text
def test_every_action_needs_authentication(reset: SecuredStack, bob: Principal,
                                           binary: bool) -> None:
    with WSClient(reset.ws_url, bob.project, binary=binary) as intruder:
        for action, body in ACTIONS:
            assert intruder.status_body(action, body) == NOT_AUTHENTIFIED, action
    assert_untouched(bob)


@pytest.mark.parametrize("headers", [
    {"X-Identity-Status": "Confirmed", "X-Roles": "admin"},
    {"X-User-Id": "admin", "X-Roles": "admin"},
    {"X-Auth-Token": "not-a-token"},
    {"X-Service-Token": "service-token"},
], ids=["identity-status", "user-and-roles", "unvalidated-token", "service-token"])
def test_forged_identity_headers_in_frames_are_no_credential(
        reset: SecuredStack, bob: Principal, headers: dict[str, str]) -> None:
    with WSClient(reset.ws_url, bob.project) as intruder:
        for action, body in ACTIONS:
            status_body = intruder.status_body(action, body,
                                               headers={**intruder.headers, **headers})
            assert status_body == NOT_AUTHENTIFIED, action
    assert_untouched(bob)


def test_a_token_in_an_ordinary_frame_does_not_switch_projects(alice: Principal,
                                                               bob: Principal) -> None:
    """Only ``authenticate`` reads X-Auth-Token: a frame carrying B's token stays A's."""
    with alice.ws() as intruder:
        headers = {**intruder.headers, "X-Auth-Token": bob.token, "X-Project-ID": bob.project}
        for action, body in ACTIONS:
            assert intruder.status_body(action, body, headers=headers) == FOREIGN, action
    assert_untouched(bob)


def test_a_repeated_token_key_is_read_once(reset: SecuredStack, alice: Principal,
                                           bob: Principal) -> None:
    """A JSON object with X-Auth-Token twice: the one value the gateway keeps (the
    last) is the one validated, and its project is the connection's."""
    with WSClient(reset.ws_url, alice.project) as client:
        client.ws.send(frame_with_pairs("authenticate", [
            ("X-Project-ID", alice.project), ("X-Auth-Token", bob.token),
            ("X-Auth-Token", alice.token)]))
        reply, _ = client.recv()
        assert reply["headers"]["status"] == 200
        assert client.status_body("queue_create", {"queue_name": "mine"})[0] == 201
        headers = {**client.headers, "X-Project-ID": bob.project}
        assert client.status_body("queue_list", headers=headers) == FOREIGN
    assert alice.queue_names() == ["mine"]
    assert_untouched(bob)


@pytest.mark.parametrize("client_id", ["", "not-a-uuid", 42])
def test_client_id_forms_without_authentication_reach_nothing(
        reset: SecuredStack, bob: Principal, client_id: Any) -> None:
    with WSClient(reset.ws_url, bob.project) as intruder:
        headers = {**intruder.headers, "Client-ID": client_id}
        for action, body in ACTIONS:
            status, _ = intruder.status_body(action, body, headers=headers)
            assert status in (400, 403), (action, status)
    assert_untouched(bob)


# -- tokens --------------------------------------------------------------------


def _authenticate(client: WSClient, token: str) -> int:
    reply = client.call("authenticate", headers={**client.headers, "X-Auth-Token": token})
    return reply["headers"]["status"]


def test_an_expired_token_does_not_authenticate(reset: SecuredStack, bob: Principal) -> None:
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, reset.keystone.issue(bob.project, lifetime=-60)) == 401
        assert client.status_body("queue_delete", {"queue_name": "vault"}) == NOT_AUTHENTIFIED
    assert_untouched(bob)


def test_a_revoked_token_does_not_authenticate(reset: SecuredStack, bob: Principal) -> None:
    token = reset.keystone.issue(bob.project)
    reset.keystone.revoke(token)
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, token) == 401
        assert client.status_body("queue_delete", {"queue_name": "vault"}) == NOT_AUTHENTIFIED
    assert_untouched(bob)


def test_a_token_revoked_after_authenticating_stops_working(reset: SecuredStack,
                                                            bob: Principal) -> None:
    reset.override("token_revalidate_interval", 0.0, group="ws_gateway")
    token = reset.keystone.issue(bob.project)
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, token) == 200
        assert client.status_body("queue_list")[0] == 200
        reset.keystone.revoke(token)
        assert client.status_body("queue_delete", {"queue_name": "vault"}) == NOT_AUTHENTIFIED
        assert client.status_body("queue_list") == NOT_AUTHENTIFIED
    assert_untouched(bob)


def test_a_revoked_token_is_noticed_only_after_the_interval(reset: SecuredStack,
                                                            bob: Principal) -> None:
    """The revalidation interval is what bounds a revoked token's life (default 300 s)."""
    reset.override("token_revalidate_interval", 3600.0, group="ws_gateway")
    token = reset.keystone.issue(bob.project)
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, token) == 200
        before = reset.keystone.validations
        assert client.status_body("queue_list")[0] == 200
        assert reset.keystone.validations == before  # no Keystone call per action


def test_a_refused_reauthentication_ends_the_earlier_identity(reset: SecuredStack,
                                                              bob: Principal) -> None:
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, reset.keystone.issue(bob.project)) == 200
        assert _authenticate(client, "stolen-or-mistyped") == 401
        assert client.status_body("queue_delete", {"queue_name": "vault"}) == NOT_AUTHENTIFIED
    assert_untouched(bob)


def test_a_token_for_another_project_sees_nothing(alice: Principal, bob: Principal) -> None:
    with alice.ws() as client:
        assert client.status_body("queue_list") == (200, {"queues": []})
        status, body = client.status_body("message_list", {"queue_name": "vault",
                                                           "echo": True})
        assert (status, body["messages"]) == (200, [])
    assert_untouched(bob)


def test_a_token_scoped_to_no_project_does_not_authenticate(reset: SecuredStack,
                                                            bob: Principal) -> None:
    with WSClient(reset.ws_url, bob.project) as client:
        assert _authenticate(client, reset.keystone.issue_domain_scoped(["admin"])) == 401
        assert client.status_body("queue_delete", {"queue_name": "vault"}) == NOT_AUTHENTIFIED
    assert_untouched(bob)


# -- pre-signed requests --------------------------------------------------------


def _signed(project: str, queue: str, methods: list[str], **changes: Any) -> dict[str, Any]:
    paths = [f"/v2/queues/{queue}/messages"]
    expires = signing.format_expires(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project,
               "URL-Paths": paths, "URL-Methods": methods, "URL-Expires": expires,
               "URL-Signature": signing.signature(SIGNING_KEY, paths, methods, project,
                                                  expires)}
    headers.update(changes)
    return headers


def test_a_signed_request_serves_what_it_signs(reset: SecuredStack, bob: Principal) -> None:
    with WSClient(reset.ws_url, bob.project) as guest:
        status, body = guest.status_body("message_list", {"queue_name": "vault", "echo": True},
                                         headers=_signed(bob.project, "vault", ["GET"]))
        assert status == 200
        assert [m["body"] for m in body["messages"]] == [{"n": 0}, {"n": 1}]


def test_a_signed_request_for_another_queue_method_or_project_is_403(
        reset: SecuredStack, alice: Principal, bob: Principal) -> None:
    bob.rest().put("/v2/queues/aXb")
    with WSClient(reset.ws_url, bob.project) as guest:
        vault_get = _signed(bob.project, "vault", ["GET"])
        # another queue
        assert guest.status_body("message_list", {"queue_name": "aXb"},
                                 headers=vault_get) == NOT_AUTHENTIFIED
        # a queue name is not a pattern
        dotted = _signed(bob.project, "a.b", ["GET", "POST"])
        assert guest.status_body("message_post", {"queue_name": "aXb",
                                                  "messages": [{"body": "planted"}]},
                                 headers=dotted) == NOT_AUTHENTIFIED
        # another method, and a widened method list
        assert guest.status_body("message_post", {"queue_name": "vault",
                                                  "messages": [{"body": "planted"}]},
                                 headers=vault_get) == NOT_AUTHENTIFIED
        widened = {**vault_get, "URL-Methods": ["GET", "DELETE"]}
        assert guest.status_body("message_delete_many", {"queue_name": "vault", "pop": 2},
                                 headers=widened) == NOT_AUTHENTIFIED
        # another project: signed for Alice's, naming Bob's
        moved = {**_signed(alice.project, "vault", ["GET", "POST"]),
                 "X-Project-ID": bob.project}
        assert guest.status_body("message_post", {"queue_name": "vault",
                                                  "messages": [{"body": "planted"}]},
                                 headers=moved) == NOT_AUTHENTIFIED
        # an action no signature covers
        assert guest.status_body("queue_delete", {"queue_name": "vault"},
                                 headers=_signed(bob.project, "vault",
                                                 ["DELETE"])) == NOT_AUTHENTIFIED
    assert bob.message_bodies("aXb") == []
    assert bob.rest().delete("/v2/queues/aXb").status_code == 204
    assert_untouched(bob)


def test_a_json_frame_with_a_forged_project_key_order_changes_nothing(
        alice: Principal, bob: Principal) -> None:
    """X-Project-ID twice in one frame: the kept value is still checked against the token."""
    with alice.ws() as client:
        client.ws.send(frame_with_pairs("queue_list", [
            ("Client-ID", client.headers["Client-ID"]), ("X-Project-ID", alice.project),
            ("X-Project-ID", bob.project)]))
        reply, _ = client.recv()
        assert (reply["headers"]["status"], reply["body"]) == FOREIGN
    assert_untouched(bob)


def test_a_signed_request_with_a_rotated_out_key(reset: SecuredStack, bob: Principal) -> None:
    signed = _signed(bob.project, "vault", ["GET"])
    reset.override("secret_key", "the-new-key", group="signed_url")
    with WSClient(reset.ws_url, bob.project) as guest:
        body = {"queue_name": "vault", "echo": True}
        assert guest.status_body("message_list", body, headers=signed) == NOT_AUTHENTIFIED
        reset.override("previous_secret_keys", [SIGNING_KEY], group="signed_url")
        assert guest.status_body("message_list", body, headers=signed)[0] == 200
