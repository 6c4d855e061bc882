"""Integration: storage workers on RabbitMQ + PostgreSQL + Redis, called over RPC.

Drives real ``StorageWorker`` processes' components (RPC server, tooz group,
migrations under the lock) through ``OsloCaller`` + ``StorageAPI``, the way
the api service does: a round trip, a typed error crossing the boundary as
the same class, and two workers seeing each other in the group.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from herald.common import config, coordination, errors
from herald.common.context import RequestContext
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.storage_api import StorageAPI
from herald.storage.worker import StorageWorker

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

_OVERRIDES = [
    ("transport_url", None),
    ("connection", "storage"),
    ("backend_url", "coordination"),
    ("topic", "rpc"),
    ("heartbeat_interval", "coordination"),
    ("call_timeout", "rpc"),
    ("bus_keys", "rpc"),
]


@pytest.fixture
def conf(rabbit_url: str, postgres_url: str, redis_coordination_url: str,
         rpc_topic: str) -> Iterator[Any]:
    conf = config.load([])
    conf.set_override("transport_url", rabbit_url)
    conf.set_override("connection", postgres_url, group="storage")
    conf.set_override("backend_url", redis_coordination_url, group="coordination")
    conf.set_override("topic", rpc_topic, group="rpc")
    conf.set_override("heartbeat_interval", 0.2, group="coordination")
    conf.set_override("call_timeout", 20, group="rpc")
    # Workers and edges of the integration tests talk over a signed bus.
    conf.set_override("bus_keys", ["integration-bus-key"], group="rpc")
    yield conf
    for name, group in _OVERRIDES:
        conf.clear_override(name, group=group)


@pytest.fixture
def workers(conf: Any) -> Iterator[list[StorageWorker]]:
    started: list[StorageWorker] = []

    def start() -> StorageWorker:
        worker = StorageWorker(conf, coordination.new_member_id(), serve_rpc=True)
        started.append(worker)
        worker.start()
        return worker

    yield start  # type: ignore[misc]
    for worker in reversed(started):
        worker.stop()
        worker.stop()  # idempotent


@pytest.fixture
def api(conf: Any) -> Iterator[StorageAPI]:
    caller = OsloCaller(conf)
    yield StorageAPI(caller)
    caller.stop()


def _ctxt() -> RequestContext:
    return RequestContext(project_id=f"proj-{uuid.uuid4().hex[:6]}", client_id=str(uuid.uuid4()))


def test_round_trip_and_typed_error(workers, api) -> None:
    workers()
    ctxt = _ctxt()

    async def scenario() -> None:
        assert await api.ping(ctxt) is True
        ids = await api.message_post(ctxt, "q", [{"body": {"bin": b"\x00\x01"}, "ttl": 60},
                                                 {"body": None, "ttl": None}], 10)
        page = await api.message_list(ctxt, "q", None, 10, True, False, False)
        assert [m["id"] for m in page["messages"]] == ids
        assert page["messages"][0]["body"] == {"bin": b"\x00\x01"}
        assert page["messages"][1]["body"] is None
        claim = await api.claim_create(ctxt, "q", 60, 60, 10)
        assert len(claim["messages"]) == 2
        with pytest.raises(errors.MessageIsClaimed):
            await api.message_delete(ctxt, "q", ids[0], None)
        with pytest.raises(errors.QueueDoesNotExist) as info:
            await api.queue_set_metadata(ctxt, "missing", {"a": 1})
        assert info.value.description == (
            f"Queue missing does not exist for project {ctxt.project_id}")
        assert info.value.status == 404

    asyncio.run(scenario())


def test_two_workers_join_the_group(workers, api) -> None:
    first, second = workers(), workers()
    ctxt = _ctxt()

    async def scenario() -> dict[str, Any]:
        return await api.health(ctxt)

    health = asyncio.run(scenario())
    assert health["storage_reachable"] is True
    assert {first.member_id, second.member_id} <= set(health["workers"])
    # Both serve the topic: a burst of calls all succeed whichever answers.
    async def burst() -> list[bool]:
        return await asyncio.gather(*(api.ping(ctxt) for _ in range(10)))

    assert asyncio.run(burst()) == [True] * 10
    second.stop()
    assert second.member_id not in first.members()
    assert first.collect_garbage() == 0
