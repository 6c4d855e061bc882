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
