"""``[DEFAULT] auth_strategy = keystone`` over REST (rest-v2.md §0.2 steps 1, 6, 8).

keystonemiddleware's auth_token runs unmodified against a local fake Keystone
(``tests.fake_keystone``): only the identity server is replaced. A request
without a valid token is 401; with one, the project and roles are the
token's (forged X-Project-ID / X-Roles headers are ignored); ``/`` and signed
requests skip authentication; admin endpoints need the token's admin role.
The attacks (Zaqar's advisories among them) are in ``tests/security``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

from herald.common import signing
from tests.api.conftest import Client, Stack, assert_error
from tests.fake_keystone import FakeKeystone


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FakeKeystone]]:
    fake = FakeKeystone()
    stack = Stack(tmp_path_factory.mktemp("keystone"))
    fake.configure(stack.conf)
    stack.conf.set_override("secret_key", "k", group="signed_url")
    try:
        yield stack, fake
    finally:
        stack.close()
        fake.close()


def client(stack: Stack, token: str | None, project: str = "forged") -> Client:
    c = Client(stack.base_url, project=project)
    if token is not None:
        c.session.headers["X-Auth-Token"] = token
    return c


def test_no_token_is_401(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, _ = keystone
    assert_error(client(stack, None).get("/v2/queues"), 401)


def test_unknown_token_is_401(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    before = fake.validations
    assert_error(client(stack, "not-a-token").get("/v2/queues"), 401)
    assert fake.validations > before  # really asked the identity server


def test_valid_token_uses_the_tokens_project(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    token = fake.issue("proj-a")
    alice = client(stack, token, project="proj-b")  # forged header: ignored
    assert alice.put("/v2/queues/q1").status_code == 201
    # Another token of proj-a sees the queue; the header project does not matter.
    other = client(stack, fake.issue("proj-a"), project="whatever")
    assert [q["name"] for q in other.get("/v2/queues").json()["queues"]] == ["q1"]
    # The project the header named has nothing.
    bob = client(stack, fake.issue("proj-b"))
    assert bob.get("/v2/queues").json()["queues"] == []


def test_missing_project_header_is_fine_with_a_token(
        keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    c = client(stack, fake.issue("proj-c"))
    resp = c.put("/v2/queues/q1", drop=("X-Project-ID",))
    assert resp.status_code == 201, resp.text


def test_expired_token_is_401(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    token = fake.issue("proj-d", lifetime=-60)
    assert_error(client(stack, token).get("/v2/queues"), 401)


def test_versions_document_needs_no_token(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, _ = keystone
    assert client(stack, None).get("/").status_code == 300


def test_signed_request_skips_keystone(keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    owner = client(stack, fake.issue("proj-e"))
    owner.post_messages("q1", 1)
    share = owner.post("/v2/queues/q1/share", json_body={}).json()
    assert share["project"] == "proj-e"
    anonymous = client(stack, None, project="proj-e")
    resp = anonymous.get("/v2/queues/q1/messages", headers={
        "URL-Signature": share["signature"], "URL-Expires": share["expires"],
        "URL-Methods": "GET", "URL-Paths": share["paths"][0]})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["messages"]) == 1
    # A bad signature is still the signed-URL 404, not a 401.
    resp = anonymous.get("/v2/queues/q1/messages", headers={
        "URL-Signature": "0" * 64, "URL-Expires": share["expires"],
        "URL-Methods": "GET", "URL-Paths": share["paths"][0]})
    assert_error(resp, 404)
    assert share["signature"] == signing.signature("k", share["paths"], ["GET"], "proj-e",
                                                   share["expires"])


def test_admin_endpoints_need_the_tokens_admin_role(
        keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    stack.conf.set_override("admin_mode", True)
    try:
        member = client(stack, fake.issue("proj-f", ["member"]))
        # A forged X-Roles header does not make a member an admin.
        assert_error(member.get("/v2/health", headers={"X-Roles": "admin"}), 403,
                     "Not authorized")
        admin = client(stack, fake.issue("proj-f", ["admin"]))
        assert admin.get("/v2/health").status_code == 200
    finally:
        stack.conf.clear_override("admin_mode")


def _zaqar(stack: Stack, token: str) -> zclient.Client:
    return zclient.Client(stack.base_url, version=2, conf={
        "auth_opts": {"backend": "keystone", "options": {"os_auth_token": token}}})


def test_health_report_through_zaqarclient_with_an_admin_token(
        keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    stack.conf.set_override("admin_mode", True)
    try:
        with pytest.raises(zerrors.ForbiddenError):  # Zaqar's 403 for a member
            _zaqar(stack, fake.issue("proj-h", ["member"])).health()
        report = _zaqar(stack, fake.issue("proj-h", ["admin"])).health()
    finally:
        stack.conf.clear_override("admin_mode")
    assert report["storage_reachable"] is True
    status = report["operation_status"]
    assert [name for name in status if name != "ping"] == [
        "create_queue", "post_messages", "claim_messages", "list_messages",
        "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue"]
    assert all(outcome["succeeded"] and outcome["ref"] is None
               and isinstance(outcome["seconds"], float) for outcome in status.values())


def test_queue_exists_through_zaqarclient_is_the_tokens_project(
        keystone: tuple[Stack, FakeKeystone]) -> None:
    stack, fake = keystone
    owner = _zaqar(stack, fake.issue("proj-i"))
    queue = owner.queue("kept", auto_create=False)
    assert queue.exists() is False
    queue.ensure_exists(force_create=True)
    assert queue.exists() is True
    # Another project's token: the same name does not exist there.
    assert _zaqar(stack, fake.issue("proj-j")).queue("kept", auto_create=False).exists() is False
