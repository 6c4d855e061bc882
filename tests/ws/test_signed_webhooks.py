"""Signed webhooks from subscriptions made over the websocket (issue 22 item 6).

``subscription_create`` with a webhook subscriber answers the signing
secret as REST does (generated, or the one supplied in
``options.signing_secret``); deliveries from the gateway's storage worker
verify with it through the ``standardwebhooks`` package, and a tampered
body does not. A malformed secret is a 400 with REST's wording (in the
websocket error shape, ``exception``); a
subscription of the connection itself (no subscriber) has no secret: its
pushes are no webhooks.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.webhook_receiver import RawWebhookReceiver

from .client import WSClient
from .conftest import ws_url

SUPPLIED = "whsec_" + base64.b64encode(b"w" * 40).decode()


@pytest.fixture
def client(gateway, project: str) -> Iterator[WSClient]:
    c = WSClient(ws_url(gateway), project)
    yield c
    c.close()


@pytest.fixture
def hook() -> Iterator[RawWebhookReceiver]:
    receiver = RawWebhookReceiver()
    yield receiver
    receiver.close()


def test_websocket_subscriptions_sign_with_their_secret(client, hook):
    status, made = client.status_body("subscription_create", {
        "queue_name": "q", "subscriber": hook.url + "/gen", "ttl": 600})
    assert status == 201, made
    generated = made["signing_secret"]
    status, made = client.status_body("subscription_create", {
        "queue_name": "q", "subscriber": hook.url + "/own", "ttl": 600,
        "options": {"signing_secret": SUPPLIED}})
    assert status == 201 and made["signing_secret"] == SUPPLIED
    status, got = client.status_body("subscription_get", {
        "queue_name": "q", "subscription_id": made["subscription_id"]})
    assert status == 200 and got["options"] == {"signing_secret": SUPPLIED}
    status, listed = client.status_body("subscription_list", {"queue_name": "q"})
    assert status == 200 and [s["options"] for s in listed["subscriptions"]] == [{}, {}]

    status, body = client.status_body("message_post", {
        "queue_name": "q", "messages": [{"body": {"event": "signed"}, "ttl": 120}]})
    assert status == 201, body
    for path, secret in (("/gen", generated), ("/own", SUPPLIED)):
        [delivery] = hook.at(path, 1)
        payload = Webhook(secret).verify(delivery["body"], delivery["headers"])
        assert payload["body"] == {"event": "signed"}
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(delivery["body"] + b" ", delivery["headers"])


def test_a_malformed_secret_is_400_and_the_connection_gets_none(client):
    status, body = client.status_body("subscription_create", {
        "queue_name": "q", "subscriber": "http://127.0.0.1:9/h", "ttl": 600,
        "options": {"signing_secret": "whsec_short"}})
    assert status == 400
    assert body["exception"] == (
        "options.signing_secret must be 'whsec_' followed by the base64 of 24 to 64 random "
        "bytes.")
    status, made = client.status_body("subscription_create", {"queue_name": "q", "ttl": 600})
    assert status == 201 and "signing_secret" not in made
