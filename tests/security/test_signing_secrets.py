"""Webhook signing secrets are shown to their own project only, in keystone mode.

Bob (a member of his project, token-authenticated) creates a webhook
subscription and reads its secret back over REST and websocket. Alice, with
a valid token for her own project and every id and name of Bob's, gets a
404 for his subscription and an empty listing over REST, with her token
alone or naming Bob's project in X-Project-ID (the token's project wins),
and the same over the websocket, where a frame naming Bob's project is a
403; no answer of hers contains his secret. Bob's own listing does not carry it either
(docs/signed-webhooks.md); a PATCH by Alice rotates nothing.
"""

from __future__ import annotations

from tests.api.conftest import assert_error
from tests.security.conftest import Principal

SUBS = "/v2/queues/vault/subscriptions"


def test_a_signing_secret_is_its_own_projects_only(alice: Principal, bob: Principal) -> None:
    owner = bob.rest()
    created = owner.post(SUBS, json_body={"subscriber": "http://127.0.0.1:9/hook",
                                          "ttl": 600})
    assert created.status_code == 201, created.text
    sid, secret = created.json()["subscription_id"], created.json()["signing_secret"]
    assert owner.get(f"{SUBS}/{sid}").json()["options"] == {"signing_secret": secret}
    assert [s["options"] for s in owner.get(SUBS).json()["subscriptions"]] == [{}]
    with bob.ws() as ws:
        status, got = ws.status_body("subscription_get", {"queue_name": "vault",
                                                          "subscription_id": sid})
        assert status == 200 and got["options"] == {"signing_secret": secret}

    answers = []
    # The token's project wins over a header naming Bob's: both act in Alice's.
    for intruder in (alice.rest(), alice.rest(project_header=bob.project)):
        answers.append(intruder.get(f"{SUBS}/{sid}"))
        assert_error(answers[-1], 404)
        answers.append(intruder.get(SUBS))
        assert answers[-1].json()["subscriptions"] == []
        answers.append(intruder.patch(f"{SUBS}/{sid}",
                                      json_body={"options": {"signing_secret": None}}))
        assert_error(answers[-1], 404)
    assert not [resp for resp in answers if secret in resp.text]
    # Over the websocket a frame naming Bob's project is refused outright.
    get = ("subscription_get", {"queue_name": "vault", "subscription_id": sid})
    listing = ("subscription_list", {"queue_name": "vault"})
    with alice.ws() as ws:
        assert ws.status_body(*get)[0] == 404
        assert ws.status_body(*listing) == (200, {"subscriptions": []})
    with alice.ws(project_header=bob.project) as ws:
        for action, body in (get, listing):
            status, reply = ws.status_body(action, body)
            assert status == 403 and secret not in str(reply)
    # Nothing Alice sent rotated it.
    assert owner.get(f"{SUBS}/{sid}").json()["options"] == {"signing_secret": secret}
