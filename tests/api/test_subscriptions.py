"""REST subscriptions (rest-v2.md §6, notifications.md §6-7) on the embedded stack.

Every endpoint and error case, pagination, expiry by moving the storage
clock, purge, and the confirmation flow end to end: with
``require_confirmation`` and a secret key, a local webhook receiver gets the
SubscriptionConfirmation, nothing else until it confirms, then the
notifications of new posts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from herald.common import signing
from herald.testing.polling import wait_until
from tests.webhook_receiver import LocalWebhookServer

from .conftest import assert_error

HOOK = "http://127.0.0.1:9/hook"


def subs(queue: str = "q") -> str:
    return f"/v2/queues/{queue}/subscriptions"


def create(api, subscriber=HOOK, queue="q", **fields) -> str:
    resp = api.post(subs(queue), json_body={"subscriber": subscriber, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()["subscription_id"]


class Hook(LocalWebhookServer):
    """A webhook receiver on 127.0.0.1 recording JSON bodies."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        super().__init__("/hook")

    def answer(self, path: str, body: bytes, request: Any) -> int:
        self.bodies.append(json.loads(body))
        return 200

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        wait_until(lambda: len(self.bodies) >= count, timeout, what=f"{count} pushes")
        return self.bodies


def notification_rows(stack: Any, api: Any, queue: str = "q") -> list[int]:
    """The outbox rows of notifications (not confirmations) of the queue."""
    return [row.seq for row in stack.outbox_rows(api.project, queue)
            if row.kind == "notification"]


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


# -- create --------------------------------------------------------------------


def test_create_201_get_and_list(api):
    resp = api.post(subs(), json_body={"subscriber": HOOK, "ttl": 600,
                                       "options": {"a": 1}})
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/v2/queues/q/subscriptions"
    sid = resp.json()["subscription_id"]
    secret = resp.json()["signing_secret"]  # generated (tests/api/test_signed_webhooks.py)
    got = api.get(f"{subs()}/{sid}")
    assert got.status_code == 200
    body = got.json()
    delivery = body.pop("delivery")
    assert body == {"id": sid, "source": "q", "subscriber": HOOK, "ttl": 600,
                    "age": body["age"], "options": {"a": 1, "signing_secret": secret},
                    "confirmed": False}
    assert delivery["attempts"] == 0
    listed = api.get(subs()).json()
    assert [s["id"] for s in listed["subscriptions"]] == [sid]
    assert listed["links"] == [{"rel": "next",
                                "href": f"/v2/queues/q/subscriptions?limit=10&marker={sid}"}]
    # the queue was created
    assert api.get("/v2/queues").json()["queues"][0]["name"] == "q"


def test_every_supported_scheme_and_the_default_ttl(api):
    for subscriber in ("http://a/b", "https://a/b", "mailto:a@example.com",
                       "trust+http://a/b", "trust+https://a/b"):
        sid = create(api, subscriber)
        assert api.get(f"{subs()}/{sid}").json()["ttl"] == 3600


def test_duplicate_unconfirmed_is_201_same_id_confirmed_is_409(api):
    sid = create(api, ttl=120)
    assert create(api, ttl=999) == sid
    assert api.get(f"{subs()}/{sid}").json()["ttl"] == 120  # not updated
    assert api.put(f"{subs()}/{sid}/confirm", json_body={"confirmed": True}).status_code == 204
    resp = api.post(subs(), json_body={"subscriber": HOOK})
    assert_error(resp, 409, "Resource conflict", "Such subscription already exists.")
    assert resp.headers["Location"] == "/v2/queues/q/subscriptions"


@pytest.mark.parametrize("body, description", [
    ({}, "Missing parameter subscriber in body."),
    ({"subscriber": "fake://x"}, "The subscriber type of subscription must be supported"),
    ({"subscriber": "email://x"}, "must be supported in the list"),
    ({"subscriber": 12}, "must be supported in the list"),
    # urllib cannot even split these (unbalanced IPv6 brackets): no scheme.
    ({"subscriber": "http://h]<x"}, "must be supported in the list"),
    ({"subscriber": "http://[::1/hook"}, "must be supported in the list"),
    ({"subscriber": HOOK, "options": [1]}, "Options must be a dict."),
    ({"subscriber": HOOK, "options": "x"}, "Options must be a dict."),
    ({"subscriber": HOOK, "ttl": "123"}, "TTL must be an integer."),
    ({"subscriber": HOOK, "ttl": 59}, "must be at least 60"),
    ({"subscriber": HOOK, "ttl": 99999999999999999}, "less than"),
    ({"subscriber": HOOK, "options": {"_retry_policy": {"minimum_delay": 40}}},
     "minimum_delay must less than maximum_delay."),
    ({"subscriber": HOOK, "options": {"_retry_policy": {"minimum_delay": 25}}},
     "invalid minimum_delay and maximum_delay."),
    ({"subscriber": HOOK, "options": {"_retry_policy": {"retry_backoff_function": "x"}}},
     "invalid retry_backoff_function."),
])
def test_create_validation(api, body, description):
    assert_error(api.post(subs(), json_body=body), 400, description=description)


def test_create_body_shapes(api):
    assert_error(api.post(subs(), data=b""), 400, description="Missing parameter subscriber")
    assert_error(api.post(subs(), json_body=[HOOK]), 400, "Invalid request body")
    assert_error(api.post(subs(), data=b"{nope"), 400,
                 description="Request body could not be parsed.")
    # the queue is created even though validation failed
    assert api.get("/v2/queues").json()["queues"][0]["name"] == "q"


def test_bad_queue_name_and_missing_headers(api):
    assert_error(api.post(subs("bad name!"), json_body={"subscriber": HOOK}), 400,
                 "Invalid queue identification")
    assert_error(api.get(subs(), drop=("Client-ID",)), 400, "Missing header value")


# -- list ------------------------------------------------------------------------


def test_list_pagination_and_limits(api):
    made = [create(api, f"http://h/{i}") for i in range(5)]
    page = api.get(subs(), params={"limit": 2}).json()
    assert [s["id"] for s in page["subscriptions"]] == made[:2]
    seen = [s["id"] for s in page["subscriptions"]]
    href = page["links"][0]["href"]
    while True:
        page = api.get(href).json()
        if not page["subscriptions"]:
            assert page["links"] == []
            break
        seen += [s["id"] for s in page["subscriptions"]]
        href = page["links"][0]["href"]
    assert seen == made
    for bad in (0, 21, -1):
        assert_error(api.get(subs(), params={"limit": bad}), 400,
                     description="Limit must be at least 1")
    assert_error(api.get(subs(), params={"limit": "x"}), 400, "Invalid parameter")
    assert api.get(subs(), params={"detailed": "False"}).status_code == 200
    assert api.get(subs("missing")).json() == {"subscriptions": [], "links": []}


# -- get / patch / delete ------------------------------------------------------------


def test_get_404s(api):
    sid = create(api)
    for path in (f"{subs('other')}/{sid}", f"{subs()}/nope", f"{subs()}/{'0' * 32}"):
        assert_error(api.get(path), 404, "Not found", "does not exist")


def test_patch(api, clock):
    sid = create(api, ttl=100)
    clock.advance(90)
    resp = api.patch(f"{subs()}/{sid}", json_body={"ttl": 100, "options": {"z": 1},
                                                   "subscriber": "http://h/new",
                                                   "ignored": True})
    assert resp.status_code == 204
    assert resp.headers["Location"] == f"/v2/queues/q/subscriptions/{sid}"
    clock.advance(90)
    got = api.get(f"{subs()}/{sid}").json()
    assert got["subscriber"] == "http://h/new"
    assert got["options"] == {"z": 1, "signing_secret": got["options"]["signing_secret"]}
    create(api, "http://h/other")
    assert_error(api.patch(f"{subs()}/{sid}", json_body={"subscriber": "http://h/other"}),
                 409)


@pytest.mark.parametrize("data, status, text", [
    (b"", 400, "No subscription to create."),
    (b"{}", 400, "No subscription to create."),
    (b"[1]", 400, "Subscriptions must be a dict."),
    (b'{"other": 1}', 400, None),
    (b'{"ttl": "x"}', 400, "TTL must be an integer."),
    (b'{"ttl": 10}', 400, "at least 60"),
    (b'{"subscriber": "fake://x"}', 400, "must be supported"),
    (b'{"subscriber": "http://h]<x"}', 400, "must be supported"),
    (b'{"options": 3}', 400, "Options must be a dict."),
])
def test_patch_validation(api, data, status, text):
    sid = create(api)
    assert_error(api.patch(f"{subs()}/{sid}", data=data), status, description=text)


def test_patch_validates_before_lookup_then_404(api):
    assert_error(api.patch(f"{subs()}/{'0' * 32}", json_body={"ttl": 10}), 400)
    assert_error(api.patch(f"{subs()}/{'0' * 32}", json_body={"ttl": 100}), 404)
    body = assert_error(api.patch(f"{subs()}/{'0' * 32}", json_body={"other": 1}), 400)
    assert body["title"] == "Unable to update subscription"


def test_delete_is_always_204(api):
    sid = create(api)
    assert api.delete(f"{subs()}/{sid}").status_code == 204
    assert api.delete(f"{subs()}/{sid}").status_code == 204
    assert api.delete(f"{subs()}/junk").status_code == 204
    assert_error(api.get(f"{subs()}/{sid}"), 404)


def test_expiry(api, clock):
    short = create(api, "http://h/short", ttl=60)
    long = create(api, "http://h/long", ttl=3600)
    clock.advance(61)
    assert_error(api.get(f"{subs()}/{short}"), 404)
    assert [s["id"] for s in api.get(subs()).json()["subscriptions"]] == [long]
    assert create(api, "http://h/short", ttl=60) != short


def test_purge_subscriptions(api):
    for i in range(12):
        create(api, f"http://h/{i}")
    assert api.post("/v2/queues/q/purge",
                    json_body={"resource_types": ["messages"]}).status_code == 204
    assert len(api.get(subs(), params={"limit": 20}).json()["subscriptions"]) == 12
    assert api.post("/v2/queues/q/purge",
                    json_body={"resource_types": ["subscriptions"]}).status_code == 204
    assert api.get(subs()).json()["subscriptions"] == []


def test_options_and_405(api):
    resp = api.request("OPTIONS", subs())
    assert resp.status_code == 200 and resp.headers["Allow"] == "GET, POST, OPTIONS"
    assert api.put(subs(), json_body={}).status_code == 405
    sid = create(api)
    assert api.post(f"{subs()}/{sid}", json_body={}).status_code == 405
    assert api.get(f"{subs()}/{sid}/confirm").status_code == 405


# -- confirm ---------------------------------------------------------------------------


def test_confirm(api):
    sid = create(api)
    assert api.put(f"{subs()}/{sid}/confirm", json_body={"confirmed": True}).status_code == 204
    assert api.get(f"{subs()}/{sid}").json()["confirmed"] is True
    resp = api.put(f"{subs()}/{sid}/confirm", json_body={"confirmed": False})
    assert resp.status_code == 204
    assert resp.headers["Location"] == f"/v2/queues/q/subscriptions/{sid}/confirm"
    assert api.get(f"{subs()}/{sid}").json()["confirmed"] is False
    for body in ({}, {"confirmed": "true"}, {"confirmed": 1}, [True]):
        assert_error(api.put(f"{subs()}/{sid}/confirm", json_body=body), 400,
                     description="The 'confirmed' should be boolean.")
    assert_error(api.put(f"{subs()}/{sid}/confirm", data=b"{x"), 400,
                 description="Request body could not be parsed.")
    assert_error(api.put(f"{subs()}/{'0' * 32}/confirm", json_body={"confirmed": True}), 404)


def test_notifications_reach_a_webhook(api, hook, stack):
    stack.override("retry_delay_scale", 0.01, group="notification")
    sid = create(api, hook.url)
    api.post_messages("q", 2, ttl=120)
    bodies = hook.wait_for(2)
    assert bodies == [{"ttl": 120, "body": {"n": 0}, "Message_Type": "Notification",
                       "queue_name": "q"},
                      {"ttl": 120, "body": {"n": 1}, "Message_Type": "Notification",
                       "queue_name": "q"}]
    wait_until(lambda: api.get(f"{subs()}/{sid}").json()["delivery"]["delivered"] >= 2, 5,
               what="2 deliveries recorded")


def test_confirmation_flow(api, hook, stack):
    stack.override("require_confirmation", True, group="notification")
    stack.override("secret_key", "s3cret", group="signed_url")
    sid = create(api, hook.url)
    [confirmation] = hook.wait_for(1)
    path = f"/v2/queues/q/subscriptions/{sid}/confirm"
    assert confirmation["Message_Type"] == "SubscriptionConfirmation"
    assert confirmation["URL-Paths"] == path and confirmation["queue_name"] == "q"
    assert signing.verify("s3cret", confirmation["URL-Signature"], [path], ["PUT"],
                          api.project, confirmation["URL-Expires"])
    api.post_messages("q", 1)
    # A post writes its notifications' outbox rows in its own transaction:
    # none for the unconfirmed subscription means none will ever be pushed.
    assert notification_rows(stack, api) == []
    assert len(hook.bodies) == 1  # nothing pushed before the confirmation
    headers = {"URL-Signature": confirmation["URL-Signature"],
               "URL-Expires": confirmation["URL-Expires"],
               "URL-Methods": confirmation["URL-Methods"],
               "URL-Paths": confirmation["URL-Paths"],
               "X-Project-ID": confirmation["X-Project-ID"]}
    resp = api.put(path, json_body=confirmation["SubscribeBody"], headers=headers)
    assert resp.status_code == 204
    api.post_messages("q", 1, ttl=100)
    bodies = hook.wait_for(2)
    assert bodies[1] == {"ttl": 100, "body": {"n": 0}, "Message_Type": "Notification",
                         "queue_name": "q"}
    # un-confirming sends an UnsubscribeConfirmation and stops the pushes
    assert api.put(path, json_body={"confirmed": False}).status_code == 204
    assert hook.wait_for(3)[2]["Message_Type"] == "UnsubscribeConfirmation"
    last = max(notification_rows(stack, api), default=0)
    api.post_messages("q", 1)
    # No row for this post (delivered rows may be collected meanwhile: only
    # newer rows count), so no push.
    assert [seq for seq in notification_rows(stack, api) if seq > last] == []
    assert len(hook.bodies) == 3
