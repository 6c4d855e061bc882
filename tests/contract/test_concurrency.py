"""Contract: concurrent claimers, poppers and posters (semantics.md §15) on every backend.

The database is the arbiter: these run real threads against one endpoint
(SQLite serializes writers with BEGIN IMMEDIATE, PostgreSQL claimers skip
each other's locked rows) and check that no message is handed out twice.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading

from .conftest import make_ctxt

THREADS = 8
MESSAGES = 200


def _run_all(func, threads=THREADS):
    barrier = threading.Barrier(threads)

    def start(index):
        barrier.wait()
        return func(index)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(start, range(threads)))


def test_concurrent_claimers_never_share_a_message(endpoint, ctxt):
    posted = endpoint.message_post(ctxt, queue="q", body_size=1,
                                   messages=[{"body": i, "ttl": 600} for i in range(MESSAGES)])

    def claimer(_index):
        got = []
        while True:
            result = endpoint.claim_create(make_ctxt(), queue="q", ttl=300, grace=60,
                                           limit=7)
            if not result["messages"]:
                # SKIP LOCKED may report nothing while others hold rows: check
                # that the queue really is drained before giving up.
                if endpoint.queue_stats(ctxt, queue="q")["free"] == 0:
                    return got
                continue
            got += [(m["id"], result["claim_id"]) for m in result["messages"]]

    results = _run_all(claimer)
    claimed = [mid for per_thread in results for mid, _ in per_thread]
    duplicates = [mid for mid, n in collections.Counter(claimed).items() if n > 1]
    assert duplicates == []
    assert sorted(claimed) == sorted(posted)
    # Every message's live claim is the one that returned it.
    owner = {mid: cid for per_thread in results for mid, cid in per_thread}
    for message in endpoint.message_get_many(ctxt, queue="q", message_ids=posted[:20]):
        assert message["claim_id"] == owner[message["id"]]


def test_concurrent_poppers_never_share_a_message(endpoint, ctxt):
    posted = endpoint.message_post(ctxt, queue="q", body_size=1,
                                   messages=[{"body": i, "ttl": 600} for i in range(MESSAGES)])

    def popper(_index):
        got = []
        while True:
            popped = endpoint.message_pop(make_ctxt(), queue="q", limit=5)
            if not popped and endpoint.queue_stats(ctxt, queue="q")["total"] == 0:
                return got
            got += [m["id"] for m in popped]

    popped = [mid for per_thread in _run_all(popper) for mid in per_thread]
    assert sorted(popped) == sorted(posted)


def test_concurrent_posters_get_increasing_positions(endpoint, ctxt):
    per_thread = 10

    def poster(index):
        ids = []
        for batch in range(per_thread):
            ids += endpoint.message_post(make_ctxt(), queue="q", body_size=1, messages=[
                {"body": [index, batch, part], "ttl": 600} for part in range(3)])
        return ids

    results = _run_all(poster)
    # Page through with markers: every message appears exactly once, each
    # poster's messages in its own posting order, each batch consecutive.
    seen, marker = [], None
    while True:
        page = endpoint.message_list(ctxt, queue="q", marker=marker, limit=20, echo=True,
                                     include_claimed=True, include_delayed=True)
        if not page["messages"]:
            break
        assert int(page["marker"]) > int(marker or 0)
        seen += page["messages"]
        marker = page["marker"]
    assert len(seen) == len({m["id"] for m in seen}) == THREADS * per_thread * 3
    for index, ids in enumerate(results):
        mine = [m["id"] for m in seen if m["body"][0] == index]
        assert mine == ids
    bodies = [tuple(m["body"]) for m in seen]
    for position in range(0, len(bodies), 3):
        index, batch, _ = bodies[position]
        assert bodies[position:position + 3] == [(index, batch, part) for part in range(3)]


def test_a_reader_paging_during_posts_misses_no_message(endpoint, ctxt):
    """Positions commit in the order they were drawn, per queue: a reader
    paging with markers while posts commit -- lone ones and coalesced
    batches -- sees every message exactly once, never one that drew a lower
    position than its marker but committed after the page was read."""
    from herald.common.rpc.coalescer import op_to_wire

    endpoint.queue_create(ctxt, queue="q", metadata=None)
    posting_done = threading.Event()
    seen = []

    def reader():
        marker = None
        while True:
            last = posting_done.is_set()  # then this page is read after every commit
            page = endpoint.message_list(ctxt, queue="q", marker=marker, limit=50,
                                         echo=True, include_claimed=True,
                                         include_delayed=True)
            seen.extend(m["id"] for m in page["messages"])
            if page["messages"]:
                marker = page["marker"]
            elif last:
                return

    def poster(index):
        ids = []
        for round_ in range(25):
            messages = [{"body": [index, round_], "ttl": 600}]
            if index % 2:
                ids += endpoint.message_post(make_ctxt(), queue="q", body_size=1,
                                             messages=messages)
            else:  # two posts coalesced into one batch: the shared-transaction path
                ops = [op_to_wire(make_ctxt(), "message_post",
                                  {"queue": "q", "body_size": 1, "messages": messages})
                       for _ in range(2)]
                ids += [i for reply in endpoint.batch(make_ctxt(""), ops=ops)
                        for i in reply["result"]]
        return ids

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(reader)
        try:
            posted = [i for ids in _run_all(poster) for i in ids]
        finally:
            posting_done.set()
        reading.result(timeout=60)
    assert len(posted) == THREADS * 25 * 3 // 2
    missed = set(posted) - set(seen)
    assert not missed, f"{len(missed)} of {len(posted)} messages skipped by the reader"
    assert len(seen) == len(set(seen))
