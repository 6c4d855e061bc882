"""Signed webhooks over REST (issue 22 item 6; docs/signed-webhooks.md).

Real deliveries from the embedded stack's outbox dispatcher reach
``tests.webhook_receiver.RawWebhookReceiver`` and are verified with the
PyPI ``standardwebhooks`` package, as a receiver would: the generated or
supplied ``whsec_`` secret verifies them; a tampered body, a replay after
the library's five-minute tolerance, a moved timestamp or another secret do
not. ``webhook-id`` stays the same across the retries of one delivery.
Rotation by PATCH signs with both secrets during
``[notification] signing_secret_overlap`` (moved through with the storage
clock), then with the new one only. Secrets never reach the logs.
python-zaqarclient reads the secret from ``options`` and rotates it.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import standardwebhooks.webhooks
from standardwebhooks import Webhook, WebhookVerificationError
from zaqarclient.queues.v2 import client as zclient

from tests.webhook_receiver import RawWebhookReceiver

from .conftest import assert_error

SUBS = "/v2/queues/q/subscriptions"
MALFORMED = ("options.signing_secret must be 'whsec_' followed by the base64 of 24 to 64 "
             "random bytes.")
SUPPLIED = "whsec_" + base64.b64encode(b"s" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 24).decode()


@pytest.fixture
def hook() -> Iterator[RawWebhookReceiver]:
    receiver = RawWebhookReceiver()
    yield receiver
    receiver.close()


def subscribe(api: Any, url: str, **options: Any) -> dict[str, Any]:
    resp = api.post(SUBS, json_body={"subscriber": url, "ttl": 3600, "options": options})
    assert resp.status_code == 201, resp.text
    return resp.json()


def verify(secret: str, delivery: dict[str, Any]) -> Any:
    return Webhook(secret).verify(delivery["body"], delivery["headers"])


def signatures(delivery: dict[str, Any]) -> list[str]:
    return delivery["headers"]["webhook-signature"].split(" ")


class _SixMinutesLater(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _SixMinutesLater:  # type: ignore[override]
        return super().now(tz) + dt.timedelta(minutes=6)


def test_a_generated_secret_signs_and_only_untouched_deliveries_verify(api, hook, stack,
                                                                         monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    created = subscribe(api, hook.url + "/ok")
    secret = created["signing_secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    got = api.get(f"{SUBS}/{created['subscription_id']}").json()
    assert got["options"] == {"signing_secret": secret}
    # A listing does not spread secrets (docs/signed-webhooks.md).
    assert api.get(SUBS).json()["subscriptions"][0]["options"] == {}
    api.post_messages("q", 2, ttl=120)
    first, second = hook.at("/ok", 2)
    assert verify(secret, first) == {"ttl": 120, "body": {"n": 0},
                                     "Message_Type": "Notification", "queue_name": "q"}
    assert verify(secret, second)["body"] == {"n": 1}
    assert first["headers"]["webhook-id"] != second["headers"]["webhook-id"]
    assert first["headers"]["webhook-id"].startswith("msg_")
    stamp = int(first["headers"]["webhook-timestamp"])
    assert abs(stamp - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert len(signatures(first)) == 1 and signatures(first)[0].startswith("v1,")

    tampered = {**first, "body": first["body"].replace(b'"n": 0', b'"n": 9')}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(secret, tampered)
    moved = {**first, "headers": {**first["headers"], "webhook-timestamp": str(stamp - 600)}}
    with pytest.raises(WebhookVerificationError):  # the timestamp is signed too
        verify(secret, moved)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(OTHER, first)
    # The same delivery replayed after the receiver's tolerance is too old.
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _SixMinutesLater)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, first)
    # The logs (which do record the deliveries) never carry the secret.
    assert [r for r in caplog.records if r.getMessage().startswith("delivered notification")]
    assert not [r for r in caplog.records if secret in r.getMessage()]


def test_retries_of_one_delivery_carry_one_webhook_id(api, hook, stack):
    """Four failures: three immediate retries by the dispatcher holding the
    row, then (the policy's first delay) the row goes back to the outbox and
    is leased again, as another worker would take it over: the id is the
    row's, the same for all five attempts, each signed afresh."""
    stack.override("retry_delay_scale", 0.01, group="notification")
    secret = subscribe(api, hook.url + "/fail-4/x")["signing_secret"]
    api.post_messages("q", 1)
    attempts = hook.at("/fail-4/x", 5)
    assert len({a["headers"]["webhook-id"] for a in attempts}) == 1
    stamps = [int(a["headers"]["webhook-timestamp"]) for a in attempts]
    assert stamps == sorted(stamps)
    for attempt in attempts:
        verify(secret, attempt)


def test_a_supplied_secret_signs_and_post_headers_cannot_replace_it(api, hook):
    created = subscribe(api, hook.url + "/ok", signing_secret=SUPPLIED,
                        post_headers={"Webhook-Signature": "v1,forged", "X-Kept": "yes"})
    assert created["signing_secret"] == SUPPLIED
    api.post_messages("q", 1)
    [delivery] = hook.at("/ok", 1)
    verify(SUPPLIED, delivery)
    assert len(signatures(delivery)) == 1 and delivery["headers"]["x-kept"] == "yes"
    # A test-fire is a webhook delivery as well.
    fired = api.post(f"{SUBS}/{created['subscription_id']}/test")
    assert fired.status_code == 200, fired.text
    assert verify(SUPPLIED, hook.at("/ok", 2)[1])["Message_Type"] == "TestNotification"


@pytest.mark.parametrize("value", [
    "", "whsec_", "abc", 12, ["whsec_x"], "whsec_!!!!" + "A" * 40, OTHER[6:],
    "whsec_" + base64.b64encode(b"x" * 16).decode(),  # too short a key
    "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long a key
])
def test_a_malformed_secret_is_400_on_create_and_patch(api, value, caplog):
    caplog.set_level(logging.DEBUG)
    body = assert_error(api.post(SUBS, json_body={"subscriber": "http://127.0.0.1:9/h",
                                                  "options": {"signing_secret": value}}),
                        400, "Invalid API request", MALFORMED)
    assert body["description"] == MALFORMED  # never the value itself
    sid = subscribe(api, "http://127.0.0.1:9/h")["subscription_id"]
    assert_error(api.patch(f"{SUBS}/{sid}", json_body={"options": {"signing_secret": value}}),
                 400, description=MALFORMED)
    if value and isinstance(value, str):
        assert not [r for r in caplog.records if value in r.getMessage()]


def test_rotation_signs_with_both_during_the_overlap_then_the_new_one(api, hook, stack, clock,
                                                                      caplog):
    caplog.set_level(logging.DEBUG)
    stack.override("signing_secret_overlap", 120, group="notification")
    sid = subscribe(api, hook.url + "/ok", signing_secret=OTHER)["subscription_id"]
    resp = api.patch(f"{SUBS}/{sid}", json_body={"options": {"signing_secret": SUPPLIED,
                                                             "post_headers": {"X-A": "1"}}})
    assert resp.status_code == 204
    assert api.get(f"{SUBS}/{sid}").json()["options"] == {"signing_secret": SUPPLIED,
                                                           "post_headers": {"X-A": "1"}}
    api.post_messages("q", 1)
    [during] = hook.at("/ok", 1)
    assert len(signatures(during)) == 2  # space-separated, the new secret's first
    verify(SUPPLIED, during)
    verify(OTHER, during)  # a receiver still on the old secret accepts it

    clock.advance(121)  # the overlap ends (still within the receiver's tolerance)
    api.post_messages("q", 1)
    after = hook.at("/ok", 2)[1]
    assert len(signatures(after)) == 1
    verify(SUPPLIED, after)
    with pytest.raises(WebhookVerificationError):
        verify(OTHER, after)

    # Options without signing_secret keep it; null rotates to a generated one.
    assert api.patch(f"{SUBS}/{sid}", json_body={"options": {}}).status_code == 204
    assert api.get(f"{SUBS}/{sid}").json()["options"] == {"signing_secret": SUPPLIED}
    assert api.patch(f"{SUBS}/{sid}",
                     json_body={"options": {"signing_secret": None}}).status_code == 204
    generated = api.get(f"{SUBS}/{sid}").json()["options"]["signing_secret"]
    assert generated not in (SUPPLIED, OTHER)
    api.post_messages("q", 1)
    last = hook.at("/ok", 3)[2]
    verify(generated, last)
    verify(SUPPLIED, last)  # the replaced secret is in its overlap again
    assert not [r for r in caplog.records
                for s in (SUPPLIED, OTHER, generated) if s in r.getMessage()]


def test_unknown_options_disable_nothing_and_near_misses_are_refused(api, hook):
    secret = subscribe(api, hook.url + "/ok", unsigned=True, signing=False, signature="off",
                       webhook_signing=False)["signing_secret"]
    api.post_messages("q", 1)
    verify(secret, hook.at("/ok", 1)[0])
    for key, meant in (("signingSecret", "signing_secret"), ("Signing-Secret", "signing_secret"),
                       ("retry_policy", "_retry_policy"), ("postHeaders", "post_headers")):
        body = assert_error(api.post(SUBS, json_body={"subscriber": hook.url + "/x",
                                                      "options": {key: SUPPLIED}}), 400)
        assert body["description"] == (f"Unknown option {key!r}: the option Herald reads "
                                       f"is {meant!r}.")



def test_python_zaqarclient_reads_and_rotates_the_secret(stack, hook):
    """The client's own create-then-GET finds the secret in ``options``;
    its ``update`` rotates it."""
    zaqar = zclient.Client(stack.base_url, version=2, conf={
        "auth_opts": {"backend": "noauth",
                      "options": {"os_project_id": f"zc-{uuid.uuid4().hex[:12]}"}}})
    sub = zaqar.subscription("zq", subscriber=hook.url + "/zc", ttl=3600)
    secret = sub.options["signing_secret"]
    zaqar.queue("zq").post([{"body": "via zaqarclient", "ttl": 120}])
    assert verify(secret, hook.at("/zc", 1)[0])["body"] == "via zaqarclient"
    sub.update({"options": {"signing_secret": SUPPLIED}})
    again = zaqar.subscription("zq", id=sub.id, auto_create=False)
    again.ensure_exists()
    assert again.options == {"signing_secret": SUPPLIED}
    [listed] = zaqar.subscriptions("zq")
    assert listed.options == {}
