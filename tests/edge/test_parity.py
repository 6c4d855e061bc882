"""One table of requests, fed through REST and through the websocket: both
edges must give the same outcome (accepted, or refused with the same status
and the same reason).

The rules live once, in ``herald.common.edge``; this is the check that the
two edges really apply them alike. Where the spec words one refusal
differently per edge (REST's "Invalid queue identification" sentence vs the
websocket's precise reason, the websocket's "Bad request." prefix), a case
gives both texts. A case is a REST request (method, path, JSON body), a
websocket action with its body, the Client-ID both send, and the expected
outcome.

One embedded stack serves both edges (as tests/security does): a storage
worker behind the JSON serializer, the REST API and a websocket gateway on
one event loop.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.common import coordination
from herald.ws_gateway.service import WSGatewayService
from tests.api.conftest import Client, Stack
from tests.ws.client import WSClient

UUID = str(uuid.UUID(int=0x1234))


class BothEdges(Stack):
    """The REST test stack plus a websocket gateway on its loop and storage."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.conf.set_override("port", 0, group="ws_gateway")
        self.conf.set_override("bind", "127.0.0.1", group="ws_gateway")
        self.gateway = WSGatewayService(self.conf, self.storage, coordination.new_member_id())
        self.run(self.gateway.start())
        self.ws_url = f"ws://127.0.0.1:{self.gateway.port}/"

    def close(self) -> None:
        try:
            self.run(self.gateway.stop())
        finally:
            super().close()


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothEdges]:
    stack = BothEdges(tmp_path_factory.mktemp("edges"))
    try:
        yield stack
    finally:
        stack.close()


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    rest: tuple[str, str, Any]  #: method, path ({q} is the queue), JSON body or None
    ws: tuple[str, dict[str, Any]]  #: action, body ("queue_name" is added)
    #: None: accepted by both. Otherwise the status both refuse with.
    status: int | None = None
    #: The reason both give (a substring of REST's description and of the
    #: websocket's ``exception``), or (REST's, websocket's) where the spec
    #: words them apart.
    reason: str | tuple[str, str] = ""
    client_id: str = UUID


BAD_NAME_REST = "The format of the submitted queue name or project id is not valid."
TTL_MESSAGE = ("The TTL for a message may not exceed 1209600 seconds, and must be at least "
               "60 seconds long.")
CLAIM_TTL = "The TTL for a claim may not exceed 43200 seconds, and must be at least 60"
CLAIM_GRACE = "The grace for a claim may not exceed 43200 seconds, and must be at least 60"
TOGETHER = "pop and id params cannot be present together in the delete request."
NEITHER = 'The request should have either "ids" or "pop" parameter'
POP_RANGE = "Pop value must be at least 1 and may not be greater than 20."
IDS_RANGE = "ids parameter should have at least 1 and not greater than 20 values."
MESSAGE_LIMIT = "Limit must be at least 1 and may not be greater than 20."
IDS = ",".join(uuid.UUID(int=i).hex for i in range(1, 22))
ID_LIST = IDS.split(",")
ONE = {"messages": [{"body": 1}]}


def _post(messages: Any) -> tuple[tuple[str, str, Any], tuple[str, dict[str, Any]]]:
    return (("POST", "/v2/queues/{q}/messages", {"messages": messages}),
            ("message_post", {"messages": messages}))


def _put(metadata: dict[str, Any]) -> tuple[tuple[str, str, Any], tuple[str, dict[str, Any]]]:
    return ("PUT", "/v2/queues/{q}", metadata), ("queue_create", {"metadata": metadata})


def _claim(ttl: int, grace: int, limit: int) -> tuple[tuple[str, str, Any],
                                                       tuple[str, dict[str, Any]]]:
    return (("POST", f"/v2/queues/{{q}}/claims?limit={limit}", {"ttl": ttl, "grace": grace}),
            ("claim_create", {"ttl": ttl, "grace": grace, "limit": limit}))


def _subscribe(body: dict[str, Any]) -> tuple[tuple[str, str, Any], tuple[str, dict[str, Any]]]:
    return ("POST", "/v2/queues/{q}/subscriptions", body), ("subscription_create", body)


CASES = [
    # -- queue names (only where a queue may be created, on the websocket)
    Case("name-ok", *_put({})),
    Case("name-chars", ("PUT", "/v2/queues/bad!name", None),
         ("queue_create", {"queue_name": "bad!name"}), 400,
         (BAD_NAME_REST, "Queue names may only contain ASCII letters, digits, underscores")),
    Case("name-length", ("PUT", "/v2/queues/" + "a" * 65, None),
         ("queue_create", {"queue_name": "a" * 65}), 400,
         (BAD_NAME_REST, "Queue names may not be more than 64 characters long.")),
    Case("name-on-post", ("POST", "/v2/queues/bad!name/messages", ONE),
         ("message_post", {"queue_name": "bad!name", **ONE}), 400,
         (BAD_NAME_REST, "Queue names may only contain ASCII letters, digits, underscores")),
    # -- Client-ID forms
    Case("client-id-hex", *_post([{"body": 1}]), client_id=uuid.uuid4().hex),
    Case("client-id-braces", *_post([{"body": 1}]), client_id="{" + str(uuid.uuid4()) + "}"),
    Case("client-id-urn", *_post([{"body": 1}]), client_id=f"urn:uuid:{uuid.uuid4()}"),
    Case("client-id-upper", *_post([{"body": 1}]), client_id=str(uuid.uuid4()).upper()),
    Case("client-id-bad", *_post([{"body": 1}]), 400, "Malformed hexadecimal UUID.",
         client_id="not-a-uuid"),
    Case("client-id-short", *_post([{"body": 1}]), 400, "Malformed hexadecimal UUID.",
         client_id="1234"),
    Case("client-id-on-list", ("GET", "/v2/queues/{q}/messages", None), ("message_list", {}),
         400, "Malformed hexadecimal UUID.", client_id="nope"),
    # -- listing limits
    Case("message-limit-0", ("GET", "/v2/queues/{q}/messages?limit=0", None),
         ("message_list", {"limit": 0}), 400, MESSAGE_LIMIT),
    Case("message-limit-21", ("GET", "/v2/queues/{q}/messages?limit=21", None),
         ("message_list", {"limit": 21}), 400, MESSAGE_LIMIT),
    Case("message-limit-20", ("GET", "/v2/queues/{q}/messages?limit=20", None),
         ("message_list", {"limit": 20})),
    Case("queue-limit-0", ("GET", "/v2/queues?limit=0", None), ("queue_list", {"limit": 0}),
         400, "Limit must be at least 1 and no greater than 20."),
    Case("queue-limit-21", ("GET", "/v2/queues?limit=21", None), ("queue_list", {"limit": 21}),
         400, "Limit must be at least 1 and no greater than 20."),
    Case("subscription-limit-0", ("GET", "/v2/queues/{q}/subscriptions?limit=0", None),
         ("subscription_list", {"limit": 0}), 400, MESSAGE_LIMIT),
    # -- message ttl bounds and post bodies
    Case("ttl-59", *_post([{"body": 1, "ttl": 59}]), 400, TTL_MESSAGE),
    Case("ttl-max-plus-1", *_post([{"body": 1, "ttl": 1209601}]), 400, TTL_MESSAGE),
    Case("ttl-60", *_post([{"body": 1, "ttl": 60}])),
    Case("ttl-string", *_post([{"body": 1, "ttl": "60"}]), 400,
         'The value of the "ttl" field must be a int.'),
    Case("ttl-null", *_post([{"body": 1, "ttl": None}]), 400,
         'The value of the "ttl" field must be a int.'),
    Case("post-empty", *_post([]), 400, "No messages to enqueu."),
    Case("post-no-body", *_post([{"ttl": 60}]), 400, 'Missing "body" field.'),
    Case("post-not-object", *_post([1]), 400, "Document type not supported."),
    Case("post-order", *_post([{"body": 1, "ttl": 1}, {"ttl": 60}]), 400,
         'Missing "body" field.'),
    # -- claims: ttl, then limit, then grace
    Case("claim-ok", *_claim(60, 60, 20)),
    Case("claim-ttl", *_claim(59, 59, 21), 400, CLAIM_TTL),
    Case("claim-limit", *_claim(60, 59, 21), 400, MESSAGE_LIMIT),
    Case("claim-limit-0", *_claim(60, 60, 0), 400, MESSAGE_LIMIT),
    Case("claim-grace", *_claim(60, 59, 20), 400, CLAIM_GRACE),
    Case("claim-grace-max", *_claim(60, 43201, 20), 400, CLAIM_GRACE),
    Case("claim-renew-ttl", ("PATCH", f"/v2/queues/{{q}}/claims/{uuid.uuid4().hex}",
                             {"ttl": 59}),
         ("claim_update", {"claim_id": uuid.uuid4().hex, "ttl": 59}), 400, CLAIM_TTL),
    # -- bulk delete and pop, in the reference's order
    Case("delete-neither", ("DELETE", "/v2/queues/{q}/messages", None),
         ("message_delete_many", {}), 400, NEITHER),
    Case("delete-together", ("DELETE", "/v2/queues/{q}/messages?ids=a&pop=1", None),
         ("message_delete_many", {"message_ids": ["a"], "pop": 1}), 400, TOGETHER),
    Case("delete-together-first", ("DELETE", f"/v2/queues/{{q}}/messages?ids={IDS}&pop=21",
                                   None),
         ("message_delete_many", {"message_ids": ID_LIST, "pop": 21}), 400, TOGETHER),
    Case("pop-0", ("DELETE", "/v2/queues/{q}/messages?pop=0", None),
         ("message_delete_many", {"pop": 0}), 400, POP_RANGE),
    Case("pop-21", ("DELETE", "/v2/queues/{q}/messages?pop=21", None),
         ("message_delete_many", {"pop": 21}), 400, POP_RANGE),
    Case("pop-1", ("DELETE", "/v2/queues/{q}/messages?pop=1", None),
         ("message_delete_many", {"pop": 1})),
    Case("ids-21", ("DELETE", f"/v2/queues/{{q}}/messages?ids={IDS}", None),
         ("message_delete_many", {"message_ids": ID_LIST}), 400, IDS_RANGE),
    Case("ids-20", ("DELETE", "/v2/queues/{q}/messages?ids=" + ",".join(ID_LIST[:20]), None),
         ("message_delete_many", {"message_ids": ID_LIST[:20]})),
    # -- subscription bodies
    Case("subscriber-scheme", *_subscribe({"subscriber": "ftp://example.invalid/"}), 400,
         "The subscriber type of subscription must be supported in the list"),
    Case("subscription-ttl-59", *_subscribe({"subscriber": "http://example.invalid/",
                                             "ttl": 59}),
         400, "The TTL for a subscription must be at least 60 seconds long."),
    Case("subscription-retry-policy", *_subscribe(
        {"subscriber": "http://example.invalid/",
         "options": {"_retry_policy": {"retries_with_no_delay": "x"}}}),
         400, "retries_with_no_delay"),
    # -- queue metadata (reserved keys)
    Case("metadata-plain", *_put({"colour": "red", "_default_message_ttl": 3600})),
    Case("metadata-ttl-range", *_put({"_default_message_ttl": 59}), 400,
         "_default_message_ttl can not exceed 1209600 seconds, and must be at least 60"),
    Case("metadata-ttl-type", *_put({"_default_message_ttl": "x"}), 400,
         "_default_message_ttl must be integer."),
    Case("metadata-falsy-type", *_put({"_max_claim_count": ""}), 400,
         "_max_claim_count must be integer."),
    Case("metadata-post-size", *_put({"_max_messages_post_size": 0}), 400,
         "_max_messages_post_size can not exceed 262144"),
    Case("metadata-delay", *_put({"_default_message_delay": 901}), 400,
         "The TTL can not exceed 900 seconds, and must be at least 0 seconds long."),
    Case("metadata-dlq-ttl", *_put({"_dead_letter_queue_messages_ttl": 59}), 400,
         TTL_MESSAGE),
    Case("metadata-encrypt", *_put({"_enable_encrypt_messages": "yes"}), 400,
         "_enable_encrypt_messages must be boolean."),
    Case("metadata-retry-policy", *_put({"_retry_policy": {"minimum_delay": "x"}}), 400,
         "minimum_delay"),
]


def _rest_outcome(edges: BothEdges, case: Case, queue: str) -> tuple[int | None, str]:
    method, path, body = case.rest
    client = Client(edges.base_url, project="parity", client_id=case.client_id)
    try:
        resp = client.request(method, path.format(q=queue), json_body=body)
    finally:
        client.session.close()
    if resp.status_code < 300:
        return None, ""
    document = resp.json()
    return resp.status_code, document.get("description") or document["title"]


def _ws_outcome(edges: BothEdges, case: Case, queue: str,
                binary: bool) -> tuple[int | None, str]:
    action, body = case.ws
    with WSClient(edges.ws_url, "parity", binary=binary, client_id=case.client_id) as client:
        status, reply = client.status_body(action, {"queue_name": queue, **body})
    if status < 300:
        return None, ""
    if isinstance(reply, dict):
        return status, str(reply.get("exception") or reply.get("error"))
    return status, str(reply)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_same_outcome(edges: BothEdges, case: Case, binary: bool) -> None:
    # Each edge gets its own queue: an accepted request must not change what
    # the other edge then sees.
    suffix = f"{case.id}-{'b' if binary else 't'}"
    rest_status, rest_reason = _rest_outcome(edges, case, f"r-{suffix}")
    ws_status, ws_reason = _ws_outcome(edges, case, f"w-{suffix}", binary)
    assert rest_status == case.status, (rest_status, rest_reason)
    assert ws_status == case.status, (ws_status, ws_reason)
    if case.status is not None:
        rest_text, ws_text = (case.reason if isinstance(case.reason, tuple)
                              else (case.reason, case.reason))
        assert rest_text in rest_reason, rest_reason
        assert ws_text in ws_reason, ws_reason
