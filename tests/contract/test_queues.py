"""Contract: queues (semantics.md §2, §8, §9) on every storage backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from herald.common import errors
from herald.storage import schema
from herald.storage.operation_status import SCRATCH_PROJECT_PREFIX

from .conftest import make_ctxt


def test_create_is_lazy_and_idempotent(endpoint, ctxt):
    assert endpoint.queue_get_metadata(ctxt, queue="q") is None
    assert endpoint.queue_create(ctxt, queue="q", metadata={"a": 1}) is True
    assert endpoint.queue_create(ctxt, queue="q", metadata={"b": 2}) is False
    # PUT on an existing queue never replaces its metadata.
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {"a": 1}


def test_projects_are_isolated(endpoint):
    one, two = make_ctxt("p1"), make_ctxt("p2")
    endpoint.queue_create(one, queue="q", metadata={"owner": "one"})
    assert endpoint.queue_get_metadata(two, queue="q") is None
    endpoint.message_post(one, queue="q", messages=[{"body": 1, "ttl": 60}], body_size=1)
    assert endpoint.queue_stats(two, queue="q")["total"] == 0
    assert endpoint.queue_list(two, marker=None, limit=10, detailed=False, name=None,
                               metadata_filters={}, with_count=True) == {"queues": [],
                                                                         "count": 0}


def test_set_metadata(endpoint, ctxt):
    with pytest.raises(errors.QueueDoesNotExist) as info:
        endpoint.queue_set_metadata(ctxt, queue="nope", metadata={"a": 1})
    assert info.value.description == "Queue nope does not exist for project p1"
    endpoint.queue_create(ctxt, queue="q", metadata={"a": 1})
    endpoint.queue_set_metadata(ctxt, queue="q", metadata={"b": [1, {"c": None}]})
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {"b": [1, {"c": None}]}


def test_list_sorted_with_marker_limit_and_count(endpoint, ctxt):
    for name in ["c", "a", "e", "b", "d"]:
        endpoint.queue_create(ctxt, queue=name, metadata={})

    def page(marker, limit=2, **kw):
        args = dict(detailed=False, name=None, metadata_filters={}, with_count=False)
        args.update(kw)
        return endpoint.queue_list(ctxt, marker=marker, limit=limit, **args)

    first = page(None)
    assert [q["name"] for q in first["queues"]] == ["a", "b"]
    assert first["count"] is None
    assert [q["name"] for q in page("b")["queues"]] == ["c", "d"]
    assert [q["name"] for q in page("d")["queues"]] == ["e"]
    assert page("zzz")["queues"] == []
    assert page(None, with_count=True)["count"] == 5


def test_list_filters(endpoint, ctxt):
    endpoint.queue_create(ctxt, queue="alpha", metadata={"node": 34, "x": "y"})
    endpoint.queue_create(ctxt, queue="beta", metadata={"node": 35})
    endpoint.queue_create(ctxt, queue="alphabet", metadata={"node": 34})
    endpoint.queue_create(ctxt, queue="q.dot_1", metadata={})

    def names(**kw):
        args = dict(marker=None, limit=10, detailed=False, name=None, metadata_filters={},
                    with_count=False)
        args.update(kw)
        return [q["name"] for q in endpoint.queue_list(ctxt, **args)["queues"]]

    assert names(name="alpha") == ["alpha", "alphabet"]
    assert names(name="_") == ["q.dot_1"]  # LIKE wildcards are literal
    assert names(metadata_filters={"node": 34}) == ["alpha", "alphabet"]
    assert names(metadata_filters={"node": 34, "x": "y"}) == ["alpha"]
    assert names(name="bet", metadata_filters={"node": 34}) == ["alphabet"]
    assert names(metadata_filters={"node": 34}, limit=1, marker="alpha") == ["alphabet"]
    detailed = endpoint.queue_list(ctxt, marker=None, limit=1, detailed=True, name=None,
                                   metadata_filters={}, with_count=True)
    assert detailed == {"queues": [{"name": "alpha", "metadata": {"node": 34, "x": "y"}}],
                        "count": 4}


def test_delete_removes_messages_and_metadata(endpoint, ctxt):
    endpoint.queue_create(ctxt, queue="q", metadata={"a": 1})
    ids = endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}],
                                body_size=1)
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    endpoint.queue_delete(ctxt, queue="q")
    endpoint.queue_delete(ctxt, queue="q")  # missing queue: no-op
    assert endpoint.queue_get_metadata(ctxt, queue="q") is None
    assert endpoint.message_get_many(ctxt, queue="q", message_ids=ids) == []
    endpoint.queue_create(ctxt, queue="q", metadata={})
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {}


def test_stats(endpoint, ctxt, clock):
    assert endpoint.queue_stats(ctxt, queue="missing") == {"claimed": 0, "free": 0, "total": 0}
    ids = endpoint.message_post(ctxt, queue="q", messages=[{"body": i, "ttl": 60}
                                                           for i in range(3)], body_size=1)
    clock.advance(5)
    ids += endpoint.message_post(ctxt, queue="q", messages=[{"body": 9, "ttl": 600}],
                                 body_size=1)
    endpoint.claim_create(ctxt, queue="q", ttl=120, grace=60, limit=2)
    clock.advance(2)
    stats = endpoint.queue_stats(ctxt, queue="q")
    assert (stats["claimed"], stats["free"], stats["total"]) == (2, 2, 4)
    assert stats["oldest"]["id"] == ids[0] and stats["oldest"]["age"] == 7
    assert stats["newest"]["id"] == ids[3] and stats["newest"]["age"] == 2
    assert stats["oldest"]["created"].endswith("Z") and len(stats["oldest"]["created"]) == 20
    # Whole messages, as Zaqar's stores give them (one snapshot with the counts).
    # (the claim extended the oldest one's ttl to its ttl + grace, as in Zaqar)
    assert (stats["oldest"]["body"], stats["oldest"]["ttl"]) == (0, 180)
    assert (stats["newest"]["body"], stats["newest"]["ttl"]) == (9, 600)
    assert stats["oldest"]["claim_id"] and stats["newest"]["claim_id"] is None
    assert stats["newest"]["claim_count"] == 0
    # Claims extended the first two; the third expires, the others live on.
    clock.advance(60)
    stats = endpoint.queue_stats(ctxt, queue="q")
    assert (stats["claimed"], stats["free"], stats["total"]) == (2, 1, 3)
    clock.advance(600)
    assert endpoint.queue_stats(ctxt, queue="q") == {"claimed": 0, "free": 0, "total": 0}


def test_purge(endpoint, ctxt):
    endpoint.queue_purge(ctxt, queue="missing", resource_types=["messages"])
    endpoint.queue_create(ctxt, queue="q", metadata={"a": 1})
    endpoint.message_post(ctxt, queue="q", messages=[{"body": i, "ttl": 60}
                                                     for i in range(5)], body_size=1)
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)
    endpoint.queue_purge(ctxt, queue="q", resource_types=["subscriptions"])
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 5
    endpoint.queue_purge(ctxt, queue="q", resource_types=["messages", "subscriptions"])
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 0  # claimed ones too
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {"a": 1}


def test_ping_and_health(endpoint, ctxt):
    assert endpoint.ping(ctxt) is True
    endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}] * 3, body_size=1)
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    health = endpoint.health(ctxt)
    assert health["storage_reachable"] is True
    assert health["workers"] == []
    assert health["message_volume"] == {"free": 2, "claimed": 1, "total": 3}


def test_health_does_zaqars_operations_on_a_scratch_queue(endpoint, ctxt, database):
    endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}], body_size=1)
    report = endpoint.health(ctxt)
    assert report["storage_reachable"] is True
    status = report["operation_status"]
    assert list(status) == ["create_queue", "post_messages", "claim_messages",
                            "list_messages", "delete_messages", "delete_claim",
                            "bulk_delete_messages", "delete_queue", "ping"]
    assert all(s["succeeded"] and s["ref"] is None for s in status.values()), status
    assert report["message_volume"]["total"] >= 1  # the users' message, not the probe's
    # Nothing of the throw-away project is left, on whichever database it ran.
    for db in {id(database): database, id(endpoint._pools.main): endpoint._pools.main}.values():
        with db.read() as conn:
            for table in (schema.queues, schema.messages, schema.claims, schema.claim_history):
                assert conn.execute(sa.select(sa.func.count()).select_from(table).where(
                    table.c.project.like(SCRATCH_PROJECT_PREFIX + "%"))).scalar_one() == 0
