"""An edge's re-send of a storage call (issue 26) changes nothing the first send did.

The edge (``herald.common.rpc.resend``) sends a call again when no worker
answered it; the first send may have committed all the same (its worker died
or stopped between the COMMIT and the reply). Every operation carries its
operation id in its context, the same on every send, and ``attempt`` counts
the sends: a re-sent post answers the first send's ids and stores nothing,
a re-sent claim answers the first send's claim, alone or in a batch, on
every backend.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from herald.common.context import RequestContext
from herald.common.rpc.coalescer import op_to_wire
from tests.contract.conftest import make_ctxt


def with_operation(ctxt: RequestContext, attempt: int = 1,
                   operation_id: str | None = None) -> RequestContext:
    return dataclasses.replace(ctxt, operation_id=operation_id or uuid.uuid4().hex,
                               attempt=attempt)


def stored(endpoint: Any, ctxt: RequestContext, queue: str) -> list[Any]:
    listed = endpoint.message_list(ctxt, queue=queue, limit=20, echo=True,
                                   include_claimed=True)
    return [m["body"] for m in listed["messages"]]


def test_a_resent_post_answers_the_first_sends_ids_and_stores_once(endpoint: Any) -> None:
    ctxt = make_ctxt()
    first = with_operation(ctxt)
    ids = endpoint.message_post(first, queue="q", messages=[{"body": 1, "ttl": 300},
                                                            {"body": 2, "ttl": 300}],
                                body_size=10)
    again = dataclasses.replace(first, attempt=2)
    assert endpoint.message_post(again, queue="q", messages=[{"body": 1, "ttl": 300},
                                                             {"body": 2, "ttl": 300}],
                                 body_size=10) == ids
    assert stored(endpoint, ctxt, "q") == [1, 2]
    # Another operation with the same messages is another post.
    other = endpoint.message_post(with_operation(ctxt, attempt=2), queue="q",
                                  messages=[{"body": 1, "ttl": 300}], body_size=10)
    assert other[0] not in ids
    assert stored(endpoint, ctxt, "q") == [1, 2, 1]


def test_a_resent_batch_of_posts_stores_each_post_once(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="b", messages=[{"body": 0, "ttl": 300}], body_size=10)
    contexts = [with_operation(ctxt) for _ in range(3)]
    ops = [op_to_wire(c, "message_post", {"queue": queue, "body_size": 10,
                                          "messages": [{"body": n, "ttl": 300}]})
           for n, (c, queue) in enumerate(zip(contexts, ("b", "b", "c"), strict=True), 1)]
    # The first send commits (its reply was lost); then the whole batch again.
    first = endpoint.batch(make_ctxt(""), ops=ops)
    resent = [{**op, "context": {**op["context"], "attempt": 2}} for op in ops]
    again = endpoint.batch(make_ctxt(""), ops=resent)
    assert [r["result"] for r in again] == [r["result"] for r in first]
    assert stored(endpoint, ctxt, "b") == [0, 1, 2]
    assert stored(endpoint, ctxt, "c") == [3]


def test_a_post_sent_only_as_a_resend_is_stored(endpoint: Any) -> None:
    """The first send never ran (its worker died before taking it)."""
    ctxt = make_ctxt()
    ids = endpoint.message_post(with_operation(ctxt, attempt=2), queue="r",
                                messages=[{"body": "x", "ttl": 300}], body_size=10)
    assert len(ids) == 1 and stored(endpoint, ctxt, "r") == ["x"]


def test_a_resent_claim_answers_the_first_sends_claim(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="k", messages=[{"body": i, "ttl": 300} for i in range(4)],
                          body_size=10)
    first = with_operation(ctxt)
    claim = endpoint.claim_create(first, queue="k", ttl=60, grace=60, limit=2)
    assert claim["claim_id"] == first.operation_id
    again = endpoint.claim_create(dataclasses.replace(first, attempt=2), queue="k", ttl=60,
                                  grace=60, limit=2)
    assert again["claim_id"] == claim["claim_id"]
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in claim["messages"]]
    # The other two are still free: the re-send claimed nothing more.
    rest = endpoint.claim_create(with_operation(ctxt), queue="k", ttl=60, grace=60, limit=10)
    assert [m["body"] for m in rest["messages"]] == [2, 3]


def test_a_resent_claim_in_a_batch_answers_the_first_sends_claim(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="kb", messages=[{"body": i, "ttl": 300} for i in range(3)],
                          body_size=10)
    ops = [op_to_wire(with_operation(ctxt), "claim_create",
                      {"queue": "kb", "ttl": 60, "grace": 60, "limit": 1}) for _ in range(2)]
    first = endpoint.batch(make_ctxt(""), ops=ops)
    again = endpoint.batch(make_ctxt(""), ops=[
        {**op, "context": {**op["context"], "attempt": 3}} for op in ops])
    assert [r["result"]["claim_id"] for r in again] == [r["result"]["claim_id"] for r in first]
    assert [m["body"] for r in again for m in r["result"]["messages"]] == [0, 1]


# -- operations whose reply is recorded (operations.REPLAYED) --------------------------


def sent_twice(call: Any, ctxt: RequestContext, late_first: bool = False,
               **kwargs: Any) -> tuple[Any, Any]:
    """The replies of a first send and its re-send (``late_first``: the
    re-send committed before the first send ran, on another worker)."""
    first = with_operation(ctxt)
    again = dataclasses.replace(first, attempt=2)
    if late_first:
        resent = call(again, **kwargs)
        return call(first, **kwargs), resent
    return call(first, **kwargs), call(again, **kwargs)


def test_a_resent_queue_create_answers_created(endpoint: Any) -> None:
    ctxt = make_ctxt()
    assert sent_twice(endpoint.queue_create, ctxt, queue="made", metadata={"a": 1}) \
        == (True, True)
    assert sent_twice(endpoint.queue_create, ctxt, late_first=True, queue="late") \
        == (True, True)
    assert endpoint.queue_create(with_operation(ctxt), queue="made") is False  # another call
    assert endpoint.queue_get_metadata(ctxt, queue="made") == {"a": 1}


def test_a_resent_subscription_create_answers_the_subscription_once(endpoint: Any) -> None:
    ctxt = make_ctxt()
    for late_first in (False, True):
        first, resent = sent_twice(endpoint.subscription_create, ctxt, late_first,
                                   queue=f"s{late_first}", subscriber="http://127.0.0.1:9/x",
                                   ttl=3600, options={})
        assert resent == first and first["created"] is True
        listed = endpoint.subscription_list(ctxt, queue=f"s{late_first}")["subscriptions"]
        assert [s["id"] for s in listed] == [first["subscription_id"]]


def test_a_resent_pop_answers_the_first_sends_messages_and_takes_no_more(
        endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="p", messages=[{"body": i, "ttl": 300} for i in range(5)],
                          body_size=10)
    first, resent = sent_twice(endpoint.message_pop, ctxt, queue="p", limit=2)
    assert [m["body"] for m in first] == [0, 1] and resent == first
    first, resent = sent_twice(endpoint.message_pop, ctxt, late_first=True, queue="p", limit=1)
    assert [m["body"] for m in resent] == [2] and first == resent
    assert stored(endpoint, ctxt, "p") == [3, 4]


def test_a_resent_release_answers_as_the_first_send(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="l", messages=[{"body": "r", "ttl": 300}], body_size=10)
    claim = endpoint.claim_create(ctxt, queue="l", ttl=60, grace=60, limit=1)
    message_id = claim["messages"][0]["id"]
    first, resent = sent_twice(endpoint.message_release, ctxt, queue="l",
                               message_id=message_id, claim_id=claim["claim_id"], delay=0)
    assert resent == first  # no 404 for the release that happened
    again = endpoint.claim_create(ctxt, queue="l", ttl=60, grace=60, limit=5)
    assert [m["id"] for m in again["messages"]] == [message_id]


def test_a_resent_redrive_answers_the_first_sends_task(endpoint: Any) -> None:
    from tests.contract.test_redrive import dead_letter  # its dead-letter set-up

    for late_first in (False, True):
        ctxt = make_ctxt(f"redrive-{late_first}")
        dead_letter(endpoint, ctxt, "src", ["a"])
        first, resent = sent_twice(endpoint.queue_redrive, ctxt, late_first, queue="dlq")
        assert resent == first and first["status"] == "running"  # no second task, no 409


def test_a_resent_subscription_test_answers_the_first_notification(endpoint: Any,
                                                                   receiver: Any) -> None:
    ctxt = make_ctxt()
    sid = endpoint.subscription_create(ctxt, queue="t", subscriber=f"{receiver.url}/ok",
                                       ttl=3600, options={})["subscription_id"]
    first, resent = sent_twice(endpoint.subscription_test, ctxt, queue="t",
                               subscription_id=sid)
    assert resent == first and first["delivered"] is True
    assert len(receiver.bodies) == 1  # notified once
