"""Integration: concurrent calls of one edge cross RabbitMQ as ``batch`` calls.

A real storage worker (RabbitMQ + PostgreSQL + Redis) answers an
``OsloCaller``: concurrent operations arrive coalesced, each with its own
outcome, typed errors (and bytes bodies) crossing exactly as on a plain call.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc.storage_api import StorageAPI
from tests.integration.test_storage_worker import api, conf, workers  # noqa: F401 fixtures

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]


def test_concurrent_calls_are_batched_with_per_op_outcomes(workers, api: StorageAPI) -> None:  # noqa: F811
    workers()
    project = f"proj-{uuid.uuid4().hex[:6]}"
    ctxts = [RequestContext(project_id=project, client_id=str(uuid.uuid4())) for _ in range(20)]

    async def scenario() -> list[Any]:
        assert await api.ping(ctxts[0]) is True
        posts = [api.message_post(c, f"q{i % 3}", [{"body": {"i": i, "b": b"\x00"}, "ttl": 60}],
                                  10) for i, c in enumerate(ctxts)]
        failing = api.queue_set_metadata(ctxts[0], "missing", {"a": 1})
        return await asyncio.gather(*posts, failing, return_exceptions=True)

    results = asyncio.run(scenario())
    *ids, failed = results
    assert all(isinstance(r, list) and len(r) == 1 for r in ids)
    assert type(failed) is errors.QueueDoesNotExist and failed.status == 404
    coalescer = api._caller._coalescer  # type: ignore[attr-defined]
    assert coalescer.batches_sent >= 1 and coalescer.ops_batched >= 2

    async def listing() -> list[Any]:
        page = await api.message_list(ctxts[0], "q0", None, 20, True, False, False)
        return [m["body"] for m in page["messages"]]

    bodies = asyncio.run(listing())
    assert [b["i"] for b in bodies] == [i for i in range(20) if i % 3 == 0]
    assert all(b["b"] == b"\x00" for b in bodies)
