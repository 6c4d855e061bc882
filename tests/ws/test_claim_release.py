"""Claims released when their websocket connection closes (``release_on_close``).

One embedded storage worker, the REST API and two gateways (one noauth, one
keystone) share one harness. A claim made with ``"release_on_close": true``
is released as soon as its connection closes: a second client long-polling
``claim_create`` on the queue gets the messages within ``RELEASED_WITHIN``
of the close (the release wakes the poll; no deadline is involved). Claims
without the flag, renewed without it, or released the ordinary way keep
their claim (or their deletion) through the close. REST refuses the flag
(no connection); a gateway that left ``herald.ws`` has its claims released
by the storage worker (``herald.storage.claim_connections``); a connection
only ever releases its own project's claims (keystone and noauth).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from herald.common import coordination
from herald.common.context import RequestContext
from herald.testing.log_events import LogEvents
from herald.testing.polling import wait_until
from herald.ws_gateway.service import WSGatewayService
from tests.fake_keystone import FakeKeystone
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, make_conf, ws_url
from tests.ws.test_extensions import Waiting

#: The issue's bound between a close and the messages being claimable again.
RELEASED_WITHIN = 1.0
FLAG = {"release_on_close": True}


@pytest.fixture(scope="module")
def keystone_gateway(harness: GatewayHarness, keystone: FakeKeystone) -> WSGatewayService:
    conf = make_conf(harness.tmp)
    keystone.configure(conf)
    service = WSGatewayService(conf, harness.storage, coordination.new_member_id(),
                               local=harness.worker.local)
    harness.run(service.start())
    harness.gateways.append(service)
    return service


@pytest.fixture(scope="module")
def rest(harness: GatewayHarness) -> str:
    harness.start_api()
    return harness.base_url


def _ok(reply: tuple[int, Any], status: int = 200) -> Any:
    assert reply[0] == status, reply
    return reply[1]


def _post(client: WSClient, queue: str, count: int = 2) -> list[str]:
    return _ok(client.status_body("message_post", {"queue_name": queue, "messages": [
        {"body": {"n": n}, "ttl": 600} for n in range(count)]}), 201)["message_ids"]


def _claim(client: WSClient, queue: str, **body: Any) -> dict[str, Any]:
    return _ok(client.status_body("claim_create", {"queue_name": queue, "ttl": 60,
                                                   "limit": 10, **body}), 201)


def _claimable(client: WSClient, queue: str) -> list[str]:
    """Claim what is claimable now (and release it again): its message ids."""
    status, body = client.status_body("claim_create", {"queue_name": queue, "ttl": 60})
    if status == 204:
        return []
    assert status == 201, body
    _ok(client.status_body("claim_delete", {"queue_name": queue,
                                            "claim_id": body["claim_id"]}), 204)
    return sorted(m["id"] for m in body["messages"])


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_closing_the_connection_releases_its_claim(gateway: WSGatewayService, project: str,
                                                   binary: bool) -> None:
    url = ws_url(gateway)
    holder = WSClient(url, project, binary=binary)
    other = WSClient(url, project, binary=not binary)
    try:
        ids = _post(holder, "jobs")
        claim = _claim(holder, "jobs", **FLAG)
        assert sorted(m["id"] for m in claim["messages"]) == sorted(ids)
        # The flag changes nothing while the connection lives.
        assert _claimable(other, "jobs") == []
        assert _ok(other.status_body("claim_get", {"queue_name": "jobs",
                                                   "claim_id": claim["claim_id"]}))["ttl"] == 60
        # A long poll parked on the queue, then the holder goes away.
        with LogEvents() as events:
            waiting = Waiting(lambda: other.status_body("claim_create", {
                "queue_name": "jobs", "ttl": 60, "wait": 20}))
            wait_until(lambda: events.count("long poll parked", project=project,
                                            queue="jobs"), what="the claim parked")
        closed_at = time.monotonic()
        holder.close()
        status, body = waiting.answered(10)
        elapsed = time.monotonic() - closed_at
        assert status == 201, body
        assert sorted(m["id"] for m in body["messages"]) == sorted(ids)
        assert elapsed < RELEASED_WITHIN, f"claimable again after {elapsed:.2f} s"
        # The released claim is gone.
        assert other.status_body("claim_get", {"queue_name": "jobs",
                                               "claim_id": claim["claim_id"]})[0] == 404
    finally:
        holder.close()
        other.close()


def test_claims_without_the_flag_outlive_the_connection(gateway: WSGatewayService,
                                                        project: str) -> None:
    url = ws_url(gateway)
    with WSClient(url, project) as other:
        holder = WSClient(url, project)
        ids = _post(holder, "plain", 3)
        plain = _claim(holder, "plain", limit=1)
        flagged = _claim(holder, "plain", limit=1, **FLAG)
        holder.close()
        # The flagged claim's message comes back; the plain claim's does not.
        wait_until(lambda: _claimable(other, "plain") == sorted(
            [ids[2], flagged["messages"][0]["id"]]), RELEASED_WITHIN * 5,
            what="the flagged claim released")
        assert _ok(other.status_body("claim_get", {
            "queue_name": "plain", "claim_id": plain["claim_id"]}))["messages"][0]["id"] == ids[0]


def test_renewal_drops_or_moves_the_registration(gateway: WSGatewayService,
                                                 project: str) -> None:
    url = ws_url(gateway)
    with WSClient(url, project) as other:
        first, second = WSClient(url, project), WSClient(url, project, binary=True)
        _post(first, "renew", 2)
        dropped = _claim(first, "renew", limit=1, **FLAG)
        moved = _claim(first, "renew", limit=1, **FLAG)
        # A renewal without the flag is an ordinary use: no release on close.
        _ok(first.status_body("claim_update", {"queue_name": "renew", "ttl": 120,
                                               "claim_id": dropped["claim_id"]}), 204)
        # A renewal with it, on another connection, moves the registration.
        _ok(second.status_body("claim_update", {"queue_name": "renew", "ttl": 120,
                                                "claim_id": moved["claim_id"], **FLAG}), 204)
        first.close()
        assert _ok(other.status_body("claim_get", {"queue_name": "renew",
                                                   "claim_id": moved["claim_id"]}))["ttl"] == 120
        second.close()
        wait_until(lambda: _claimable(other, "renew") == [moved["messages"][0]["id"]],
                   RELEASED_WITHIN * 5, what="the moved registration released with its connection")
        assert _ok(other.status_body("claim_get", {
            "queue_name": "renew", "claim_id": dropped["claim_id"]}))["ttl"] == 120


def test_released_or_acknowledged_claims_stay_so(gateway: WSGatewayService,
                                                 project: str) -> None:
    url = ws_url(gateway)
    with WSClient(url, project) as other:
        holder = WSClient(url, project)
        ids = _post(holder, "done", 3)
        acked = _claim(holder, "done", limit=1, **FLAG)
        released = _claim(holder, "done", limit=1, **FLAG)
        # Every message of one claim deleted (acknowledged) with its claim id.
        _ok(holder.status_body("message_delete", {
            "queue_name": "done", "message_id": acked["messages"][0]["id"],
            "claim_id": acked["claim_id"]}), 204)
        # The other released, then its message claimed by someone else.
        _ok(holder.status_body("claim_delete", {"queue_name": "done",
                                                "claim_id": released["claim_id"]}), 204)
        taken = _claim(other, "done", limit=1)
        assert taken["messages"][0]["id"] == released["messages"][0]["id"]
        # A third flagged claim proves the close was handled before we look.
        last = _claim(holder, "done", limit=1, **FLAG)
        holder.close()
        wait_until(lambda: _claimable(other, "done") == [last["messages"][0]["id"]],
                   RELEASED_WITHIN * 5, what="the live flagged claim released")
        assert _ok(other.status_body("claim_get", {
            "queue_name": "done", "claim_id": taken["claim_id"]}))["messages"][0]["id"] == ids[1]
        stats = _ok(other.status_body("queue_get_stats", {"queue_name": "done"}))
        assert stats["messages"]["total"] == 2  # the acknowledged one stays deleted


def test_flag_must_be_a_boolean(gateway: WSGatewayService, project: str) -> None:
    with WSClient(ws_url(gateway), project) as client:
        _post(client, "typed", 1)
        for action, extra in (("claim_create", {}), ("claim_update", {"claim_id": "x" * 24})):
            status, body = client.status_body(action, {"queue_name": "typed",
                                                       "release_on_close": "yes", **extra})
            # The schema's check, as for every mistyped field (websocket.md §2).
            assert (status, body) == (400, {"error": "Schema validation failed."})


def test_rest_refuses_the_flag(rest: str, project: str) -> None:
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project}
    resp = requests.post(f"{rest}/v2/queues/r/messages", headers=headers, timeout=10,
                         json={"messages": [{"body": 1, "ttl": 300}]})
    assert resp.status_code == 201, resp.text
    resp = requests.post(f"{rest}/v2/queues/r/claims", headers=headers, timeout=10,
                         json={"ttl": 60, "release_on_close": True})
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert set(error) == {"title", "description"}
    assert "only available over the websocket API" in error["description"]
    resp = requests.post(f"{rest}/v2/queues/r/claims", headers=headers, timeout=10,
                         json={"ttl": 60, "release_on_close": 1})
    assert resp.status_code == 400 and "must be a boolean" in resp.json()["description"]
    # false (and null) mean "an ordinary claim", as Zaqar would read an unknown key.
    resp = requests.post(f"{rest}/v2/queues/r/claims", headers=headers, timeout=10,
                         json={"ttl": 60, "release_on_close": False})
    assert resp.status_code == 201, resp.text
    claim_path = resp.headers["Location"]
    resp = requests.patch(f"{rest}{claim_path}", headers=headers, timeout=10,
                          json={"ttl": 60, "release_on_close": True})
    assert resp.status_code == 400, resp.text


def test_a_gone_gateways_claims_are_released_by_the_worker(harness: GatewayHarness,
                                                           gateway: WSGatewayService,
                                                           project: str) -> None:
    """A gateway that is not in ``herald.ws`` (killed before it could release
    anything) has its claims released by the worker's heartbeat; a live
    gateway's claims are left alone by the same sweep."""
    url = ws_url(gateway)
    with WSClient(url, project) as client:
        _post(client, "live", 1)
        live = _claim(client, "live", **FLAG)
        ghost_ids = _post(client, "ghost", 2)
        ctxt = RequestContext(project_id=project)
        ghost = harness.run(harness.storage.claim_create(
            ctxt, "ghost", ttl=60, grace=60, limit=10,
            connection={"gateway_id": "killed-gateway.1.deadbeef", "connection_id": "c1"}))
        assert sorted(m["id"] for m in ghost["messages"]) == sorted(ghost_ids)
        released = wait_until(lambda: _claimable(client, "ghost"), 5.0,
                              what="the gone gateway's claim released by the worker")
        assert released == sorted(ghost_ids)
        # The same sweep saw the live gateway's registered claim and kept it.
        assert _ok(client.status_body("claim_get", {"queue_name": "live",
                                                    "claim_id": live["claim_id"]}))


def test_a_connection_releases_only_its_own_projects_claims(
        keystone_gateway: WSGatewayService, keystone: FakeKeystone) -> None:
    url = ws_url(keystone_gateway)
    a_project, b_project = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"

    def connect(project: str) -> WSClient:
        client = WSClient(url, project)
        token = keystone.issue(project)
        reply = client.call("authenticate", headers={**client.headers, "X-Auth-Token": token})
        assert reply["headers"]["status"] == 200, reply
        return client

    a, b, b_reader = connect(a_project), connect(b_project), connect(b_project)
    try:
        a_ids, b_ids = _post(a, "shared"), _post(b, "shared")
        _claim(a, "shared", **FLAG)
        b_claim = _claim(b, "shared", **FLAG)
        # Project A may not claim with another project's headers.
        status, _ = a.status_body("claim_create", {"queue_name": "shared", **FLAG},
                                  headers={**a.headers, "X-Project-ID": b_project})
        assert status in (401, 403)
        a.close()
        a_reader = connect(a_project)
        try:
            wait_until(lambda: _claimable(a_reader, "shared") == sorted(a_ids),
                       RELEASED_WITHIN * 5, what="A's claim released")
        finally:
            a_reader.close()
        # B's claim on a queue of the same name is untouched by A's close.
        held = _ok(b_reader.status_body("claim_get", {"queue_name": "shared",
                                                      "claim_id": b_claim["claim_id"]}))
        assert sorted(m["id"] for m in held["messages"]) == sorted(b_ids)
        assert _claimable(b_reader, "shared") == []
    finally:
        for client in (a, b, b_reader):
            client.close()
