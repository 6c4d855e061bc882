"""REST: idempotent posts, delivery history and subscription test-fire
(docs/api-extensions.md) on the embedded stack, with a local webhook
receiver (200 on /ok, 500 elsewhere) served by the stack's real dispatcher.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.webhook_receiver import WebhookReceiver

from .conftest import Client, Stack, assert_error


def _post(api: Client, queue: str, messages: list[dict[str, Any]],
          key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else None
    return api.post(f"/v2/queues/{queue}/messages", json_body={"messages": messages},
                    headers=headers)


# -- idempotent posts ------------------------------------------------------------


def test_retried_post_returns_the_original_ids(api: Client) -> None:
    batch = [{"body": {"order": 42}, "ttl": 300}, {"body": "second"}]
    first = _post(api, "idem", batch, key="order-42-attempt")
    assert first.status_code == 201
    again = _post(api, "idem", batch, key="order-42-attempt")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    listed = api.get("/v2/queues/idem/messages?echo=true").json()["messages"]
    assert len(listed) == 2
    other = _post(api, "idem", batch, key="another-key")
    assert other.json() != first.json()
    assert len(api.get("/v2/queues/idem/messages?echo=true&limit=20").json()["messages"]) == 4


def test_reused_key_with_other_messages_is_409(api: Client) -> None:
    assert _post(api, "idem-c", [{"body": 1}], key="k").status_code == 201
    assert_error(_post(api, "idem-c", [{"body": 2}], key="k"), 409, "Resource conflict",
                 "Idempotency-Key was already used")


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_bad_key_is_400(api: Client, key: str) -> None:
    resp = api.session.post(
        f"{api.base_url}/v2/queues/idem-bad/messages",
        data=json.dumps({"messages": [{"body": 1}]}).encode(),
        headers={**api.headers(), "Idempotency-Key": key.encode("utf-8")}, timeout=10)
    assert_error(resp, 400, "Invalid header value", "Idempotency-Key")


def test_key_window_expiry(api: Client, stack: Stack, clock: Any) -> None:
    stack.override("idempotency_window", 30, group="storage")
    first = _post(api, "idem-w", [{"body": 1}], key="k").json()
    clock.advance(31)
    assert _post(api, "idem-w", [{"body": 1}], key="k").json() != first


# -- delivery history -------------------------------------------------------------


def test_deliveries_show_claims_and_push_attempts(api: Client, receiver: WebhookReceiver) -> None:
    assert api.post("/v2/queues/hist/subscriptions",
                    json_body={"subscriber": f"{receiver.url}/ok", "ttl": 3600}
                    ).status_code == 201
    [mid] = api.post_messages("hist", 1)
    deadline = time.monotonic() + 10
    while not receiver.bodies and time.monotonic() < deadline:
        time.sleep(0.02)
    claim_id, _ = api.claim("hist", ttl=60)
    other = Client(api.base_url, project=api.project)
    api.delete(f"/v2/queues/hist/claims/{claim_id}")
    second_id, _ = other.claim("hist", ttl=120)

    resp = api.get(f"/v2/queues/hist/messages/{mid}/deliveries")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["message_id"] == mid and body["exists"] is True
    assert body["href"] == f"/v2/queues/hist/messages/{mid}/deliveries"
    assert [(c["claim_id"], c["client_id"], c["claim_count"]) for c in body["claims"]] == [
        (claim_id, api.client_id, 1), (second_id, other.client_id, 2)]
    [push] = body["pushes"]
    assert push["subscriber"] == f"{receiver.url}/ok"
    assert push["outcome"] == "delivered" and push["status"] == 200
    assert push["attempt"] == 1 and push["latency_ms"] > 0
    assert push["attempted_at"].endswith("Z")

    # Still answered after the message is gone; 404 for what never existed.
    assert api.delete(f"/v2/queues/hist/messages/{mid}?claim_id={second_id}"
                      ).status_code == 204
    assert api.get(f"/v2/queues/hist/messages/{mid}/deliveries").json()["exists"] is False
    assert_error(api.get("/v2/queues/hist/messages/0123456789abcdef01234567/deliveries"),
                 404, "Not found")
    assert_error(Client(api.base_url).get(f"/v2/queues/hist/messages/{mid}/deliveries"),
                 404)


def test_failing_subscriber_shows_in_health(api: Client, stack: Stack,
                                           receiver: WebhookReceiver) -> None:
    stack.override("retry_delay_scale", 0.0, group="notification")
    resp = api.post("/v2/queues/sick/subscriptions",
                    json_body={"subscriber": f"{receiver.url}/down", "ttl": 3600})
    sid = resp.json()["subscription_id"]
    [mid] = api.post_messages("sick", 1)
    deadline = time.monotonic() + 10
    delivery: dict[str, Any] = {}
    while time.monotonic() < deadline:
        delivery = api.get(f"/v2/queues/sick/subscriptions/{sid}").json()["delivery"]
        if delivery["failed"]:
            break
        time.sleep(0.05)
    assert delivery["failed"] == 1, delivery
    pushes = api.get(f"/v2/queues/sick/messages/{mid}/deliveries").json()["pushes"]
    # Every attempt the retry policy allowed, each recorded, the last one final.
    assert len(pushes) >= 2
    assert [(p["attempt"], p["outcome"], p["status"]) for p in pushes] == [
        *((n, "retry", 500) for n in range(1, len(pushes))), (len(pushes), "failed", 500)]
    assert delivery["healthy"] is False
    assert delivery["consecutive_failures"] == len(pushes) == delivery["attempts"]
    assert delivery["last_failure"] is not None and delivery["last_success"] is None


# -- test-fire ----------------------------------------------------------------------


def test_test_fire(api: Client, receiver: WebhookReceiver) -> None:
    ok = api.post("/v2/queues/tf/subscriptions",
                  json_body={"subscriber": f"{receiver.url}/ok"}).json()["subscription_id"]
    resp = api.post(f"/v2/queues/tf/subscriptions/{ok}/test")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["delivered"] is True and result["status"] == 200
    assert receiver.bodies[-1] == ("/ok", result["payload"])
    assert result["payload"]["Message_Type"] == "TestNotification"
    bad = api.post("/v2/queues/tf/subscriptions",
                   json_body={"subscriber": f"{receiver.url}/bad"}).json()["subscription_id"]
    result = api.post(f"/v2/queues/tf/subscriptions/{bad}/test").json()
    assert result["delivered"] is False and result["status"] == 500
    assert result["error"] == "HTTP 500"
    health = api.get(f"/v2/queues/tf/subscriptions/{bad}").json()["delivery"]
    assert health["consecutive_failures"] == 1 and health["healthy"] is False
    assert_error(api.post("/v2/queues/tf/subscriptions/0123456789abcdef0123456789abcdef/test"),
                 404, "Not found")
    assert_error(api.get(f"/v2/queues/tf/subscriptions/{ok}/test"), 405)
