"""One keystone-mode stack for the security matrix: REST and websocket on one storage.

``SecuredStack`` is the REST test stack (``tests.api.conftest.Stack``: an
embedded storage worker behind the same JSON serialization as RabbitMQ, the
REST API on a loop thread) configured with ``[DEFAULT] auth_strategy =
keystone`` against the local fake Keystone (``tests.fake_keystone``: only
the identity server is replaced, keystonemiddleware runs unmodified), a
``[signed_url]`` key, and a websocket gateway on the same loop, storage and
configuration. A row of the matrix can therefore attack over one transport
and check the victim's data over the other.

``Principal`` is one caller: a project, a token for it, and REST / websocket
clients that send that token.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.ws_gateway.service import WSGatewayService
from tests.api.conftest import Client, Stack
from tests.fake_keystone import FakeKeystone
from tests.ws.client import WSClient

SIGNING_KEY = "matrix-signing-key"


class SecuredStack(Stack):
    def __init__(self, tmp: Path, keystone: FakeKeystone) -> None:
        super().__init__(tmp)
        self.keystone = keystone
        keystone.configure(self.conf)
        self.conf.set_override("secret_key", SIGNING_KEY, group="signed_url")
        self.conf.set_override("port", 0, group="ws_gateway")
        self.conf.set_override("bind", "127.0.0.1", group="ws_gateway")
        # On the API's own configuration (keystone, signing key): one policy.
        self.ws_gateway: WSGatewayService = self.start_gateway(self.conf)
        self.ws_url = f"ws://127.0.0.1:{self.ws_gateway.port}/"


@dataclasses.dataclass
class Principal:
    """A caller with a valid token for ``project``."""

    stack: SecuredStack
    project: str
    token: str

    def rest(self, project_header: str | None = None) -> Client:
        """A REST client sending this token (and ``project_header`` as X-Project-ID)."""
        client = Client(self.stack.base_url, project=project_header or self.project)
        client.session.headers["X-Auth-Token"] = self.token
        return client

    def ws(self, project_header: str | None = None, binary: bool = False) -> WSClient:
        """An authenticated websocket client (frames carry ``project_header``)."""
        client = WSClient(self.stack.ws_url, project_header or self.project, binary=binary)
        reply = client.call("authenticate",
                            headers={**client.headers, "X-Auth-Token": self.token})
        assert reply["headers"]["status"] == 200, reply
        return client

    def queue_names(self) -> list[str]:
        resp = self.rest().get("/v2/queues")
        assert resp.status_code == 200, resp.text
        return [q["name"] for q in resp.json()["queues"]]

    def message_bodies(self, queue: str) -> list[Any]:
        resp = self.rest().get(f"/v2/queues/{queue}/messages?echo=true&include_claimed=true")
        assert resp.status_code == 200, resp.text
        return [m["body"] for m in resp.json()["messages"]]


@pytest.fixture(scope="module")
def keystone() -> Iterator[FakeKeystone]:
    fake = FakeKeystone()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory,
            keystone: FakeKeystone) -> Iterator[SecuredStack]:
    stack = SecuredStack(tmp_path_factory.mktemp("security"), keystone)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def reset(secured: SecuredStack) -> Iterator[SecuredStack]:
    try:
        yield secured
    finally:
        secured.reset_overrides()


def _principal(stack: SecuredStack, roles: list[str] | None = None) -> Principal:
    project = f"p-{uuid.uuid4().hex[:10]}"
    return Principal(stack, project, stack.keystone.issue(project, roles or ["member"]))


@pytest.fixture
def alice(reset: SecuredStack) -> Principal:
    """The attacker: a member of a project of her own."""
    return _principal(reset)


@pytest.fixture
def bob(reset: SecuredStack) -> Principal:
    """The victim: a member of another project, owning a queue with two messages."""
    victim = _principal(reset)
    client = victim.rest()
    assert client.put("/v2/queues/vault").status_code == 201
    client.post_messages("vault", 2)
    return victim
