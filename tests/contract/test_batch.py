"""StorageAPI 1.2 ``batch`` on both backends: order, per-op outcomes, isolation."""

from __future__ import annotations

from typing import Any

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc.coalescer import error_from_wire, op_to_wire
from tests.contract.conftest import make_ctxt


def post(ctxt: RequestContext, queue: str, body: Any, size: int = 10) -> dict[str, Any]:
    return op_to_wire(ctxt, "message_post", {"queue": queue, "body_size": size,
                                             "messages": [{"body": body, "ttl": 300}]})


def bodies(endpoint: Any, ctxt: RequestContext, queue: str) -> list[Any]:
    listed = endpoint.message_list(ctxt, queue=queue, limit=20, echo=True)
    return [m["body"] for m in listed["messages"]]


def test_posts_run_in_order_each_with_its_own_context(endpoint: Any) -> None:
    a, b = make_ctxt("p1"), make_ctxt("p2")
    ops = [post(a, "q1", 1), post(b, "q1", "other project"), post(a, "q2", 2),
           post(a, "q1", 3)]
    replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert all("result" in r and len(r["result"]) == 1 for r in replies)
    assert bodies(endpoint, a, "q1") == [1, 3]
    assert bodies(endpoint, a, "q2") == [2]
    assert bodies(endpoint, b, "q1") == ["other project"]


def test_a_failing_operation_does_not_fail_its_neighbours(endpoint: Any, conf: Any) -> None:
    ctxt = make_ctxt()
    too_big = conf.limits.max_messages_post_size + 1
    ops = [post(ctxt, "q1", "before"),
           post(ctxt, "fresh", "refused", size=too_big),  # BadRequest after its queue upsert
           op_to_wire(ctxt, "message_delete", {"queue": "q1", "message_id": "0" * 32,
                                               "claim_id": "not-an-id"}),
           op_to_wire(ctxt, "no_such_method", {}),
           op_to_wire(ctxt, "_private", {}),
           post(ctxt, "q1", "after")]
    replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert "result" in replies[0] and "result" in replies[5]
    assert type(error_from_wire(replies[1]["error"])) is errors.BadRequest
    assert type(error_from_wire(replies[2]["error"])) is errors.ClaimMismatch
    assert type(error_from_wire(replies[3]["error"])) is errors.InternalError
    assert type(error_from_wire(replies[4]["error"])) is errors.InternalError
    assert bodies(endpoint, ctxt, "q1") == ["before", "after"]
    # The refused post's savepoint took its lazy queue creation with it.
    assert endpoint.queue_get_metadata(ctxt, queue="fresh") is None


def test_claims_and_deletes_in_one_batch(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="q", messages=[{"body": i, "ttl": 300} for i in range(4)],
                          body_size=10)
    claim = op_to_wire(ctxt, "claim_create", {"queue": "q", "ttl": 60, "grace": 60,
                                              "limit": 2})
    first, second = endpoint.batch(make_ctxt(""), ops=[claim, claim])
    got = [m["body"] for m in first["result"]["messages"] + second["result"]["messages"]]
    assert got == [0, 1, 2, 3]  # no message in two claims, oldest first
    deletes = [op_to_wire(ctxt, "message_delete", {"queue": "q", "message_id": m["id"],
                                                   "claim_id": r["result"]["claim_id"]})
               for r in (first, second) for m in r["result"]["messages"]]
    # A wrong claim id in the middle fails alone.
    deletes.insert(2, op_to_wire(ctxt, "message_delete", {
        "queue": "q", "message_id": second["result"]["messages"][0]["id"],
        "claim_id": first["result"]["claim_id"]}))
    replies = endpoint.batch(make_ctxt(""), ops=deletes)
    assert type(error_from_wire(replies[2]["error"])) is errors.MessageIsClaimed
    assert all("result" in r for i, r in enumerate(replies) if i != 2)
    assert bodies(endpoint, ctxt, "q") == []


def test_reads_and_other_writes_interleave_in_order(endpoint: Any) -> None:
    ctxt = make_ctxt()
    ops = [op_to_wire(ctxt, "queue_create", {"queue": "q", "metadata": {"k": 1}}),
           post(ctxt, "q", "x"),
           op_to_wire(ctxt, "queue_stats", {"queue": "q"}),
           op_to_wire(ctxt, "queue_delete", {"queue": "q"}),
           op_to_wire(ctxt, "queue_get_metadata", {"queue": "q"})]
    replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert replies[0] == {"result": True}
    assert replies[2]["result"]["total"] == 1
    assert replies[4] == {"result": None}
