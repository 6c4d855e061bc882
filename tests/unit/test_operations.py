"""The table of storage operations (herald.common.rpc.operations) and what is made of it.

The table declares every StorageAPI method once; the caller's proxy, the
worker's endpoint, pool routing, the coalescer's classes and the 503 wording
are generated from it or read from it. These tests hold each of those to the
table, and prove that an operation added to (a copy of) the table is served
end to end with no other code than a controller method.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.common import config, errors
from herald.common.context import RequestContext
from herald.common.rpc import coalescer, operations
from herald.common.rpc.caller import InProcessCaller
from herald.common.rpc.operations import (
    OPERATIONS,
    Arg,
    Coalescing,
    Operation,
    Route,
)
from herald.common.rpc.storage_api import StorageAPI, with_operations
from herald.storage import batch_runner, migrations, pools
from herald.storage.endpoint import CONTROLLERS, EndpointBase, StorageEndpoint, endpoint_class
from herald.storage.engine import Database, make_engine

TABLE = operations.BY_NAME


def _public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items()
            if not name.startswith("_") and inspect.iscoroutinefunction(value)}


def _dummy(arg: Arg) -> Any:
    """A JSON value to pass for a required argument in routing tests."""
    return "q" if arg.name == "queue" else "x"


# -- the table itself ----------------------------------------------------------

def test_table_is_well_formed() -> None:
    assert len(TABLE) == len(OPERATIONS)
    for op in OPERATIONS:
        assert op.unavailable.endswith(".") and "try again" not in op.unavailable, op.name
        assert op.doc, op.name
        assert op.controller in {*CONTROLLERS, "endpoint"}, op.name
        if op.route in (Route.QUEUE, Route.QUEUE_CREATE, Route.QUEUE_DELETE):
            assert op.args and op.args[0].name == "queue", op.name
        if op.coalescing in operations.SHARED_TRANSACTION:
            assert op.writes and op.route is Route.QUEUE, op.name


def test_a_table_naming_an_operation_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        operations.index([OPERATIONS[0], OPERATIONS[0]])
    late = dataclasses.replace(OPERATIONS[0], name="late", args=(Arg("a", 1), Arg("b")))
    with pytest.raises(ValueError, match="after an optional"):
        operations.index([late])


# -- the caller's proxy ----------------------------------------------------------

def test_every_storage_api_method_is_in_the_table_and_back() -> None:
    assert _public_methods(StorageAPI) == set(TABLE)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_storage_api_signature_is_the_tables(op: Operation) -> None:
    params = list(inspect.signature(getattr(StorageAPI, op.name)).parameters.values())
    assert [p.name for p in params] == ["self", "ctxt", *(a.name for a in op.args)]
    for param, arg in zip(params[2:], op.args, strict=True):
        assert (param.default is inspect.Parameter.empty) == arg.required
    assert op.doc in (getattr(StorageAPI, op.name).__doc__ or "")


class RecordingCaller:
    """Records what StorageAPI sends; fails like a broker that is gone."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        self.calls.append((method, kwargs))
        if self.fail is not None:
            raise self.fail
        return None

    def stop(self) -> None:
        pass


CTXT = RequestContext(project_id="p", request_id="req-1")


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_a_503_says_what_failed_in_the_tables_words(op: Operation) -> None:
    cause = errors.ServiceUnavailable(
        "The storage service did not answer in time. Please try again in a few seconds.")
    api = StorageAPI(RecordingCaller(fail=cause))
    args = [_dummy(arg) for arg in op.args if arg.required]
    with pytest.raises(errors.ServiceUnavailable) as info:
        asyncio.run(getattr(api, op.name)(CTXT, *args))
    assert info.value.description == f"{op.unavailable} Please try again in a few seconds."
    assert info.value.__cause__ is cause  # the websocket still shows how it failed


def test_other_errors_pass_through_unchanged() -> None:
    gone = errors.QueueDoesNotExist("Queue q does not exist.")
    api = StorageAPI(RecordingCaller(fail=gone))
    with pytest.raises(errors.QueueDoesNotExist) as info:
        asyncio.run(api.queue_stats(CTXT, "q"))
    assert info.value is gone


def test_arguments_cross_as_they_always_did() -> None:
    caller = RecordingCaller()
    api = StorageAPI(caller)
    asyncio.run(api.message_post(CTXT, "q", [{"body": 1, "ttl": None}], 10))
    asyncio.run(api.message_post(CTXT, "q", [], 2, idempotency_key="k"))
    asyncio.run(api.subscription_create(CTXT, "q", "http://x", None, None))
    asyncio.run(api.claim_create(CTXT, "q", ttl=60, grace=30, limit=5))
    assert caller.calls == [
        # idempotency_key (1.3) is sent only when given: 1.2 workers refuse it
        ("message_post", {"queue": "q", "messages": [{"body": 1, "ttl": None}],
                          "body_size": 10}),
        ("message_post", {"queue": "q", "messages": [], "body_size": 2,
                          "idempotency_key": "k"}),
        ("subscription_create", {"queue": "q", "subscriber": "http://x", "ttl": None,
                                 "options": None, "send_confirmation": False,
                                 "connection": None}),
        ("claim_create", {"queue": "q", "ttl": 60, "grace": 30, "limit": 5}),
    ]
    with pytest.raises(TypeError):
        asyncio.run(api.queue_stats(CTXT))
    with pytest.raises(TypeError):
        asyncio.run(api.queue_stats(CTXT, "q", nope=1))
    with pytest.raises(TypeError):
        asyncio.run(api.queue_stats(CTXT, "q", queue="q"))


# -- the coalescer's and the batch runner's classes ---------------------------------

def test_uncoalesced_operations_are_the_tables() -> None:
    never = {op.name for op in OPERATIONS if op.coalescing is Coalescing.NEVER}
    assert coalescer.UNCOALESCED == never | {coalescer.BATCH_METHOD}
    assert never == {"ping", "health"}


def test_shared_transaction_writes_are_the_tables() -> None:
    shared = {op.name for op in OPERATIONS if op.coalescing in operations.SHARED_TRANSACTION}
    assert shared == {"message_post", "message_delete", "claim_create", "claim_update"}
    assert batch_runner._POST.coalescing is Coalescing.SHARED_POST
    assert batch_runner._DELETE.coalescing is Coalescing.SHARED_DELETE


# -- the worker's endpoint -------------------------------------------------------------

def test_every_operation_has_an_endpoint_method_and_a_target() -> None:
    for op in OPERATIONS:
        assert callable(getattr(StorageEndpoint, op.name)), op.name
        if op.controller == "endpoint":
            adapter = getattr(EndpointBase, f"_{op.method}")
            names = list(inspect.signature(adapter).parameters)[3:]  # self, op, ctxt
            assert names == [arg.name for arg in op.args], op.name
            continue
        target = getattr(CONTROLLERS[op.controller], op.method)
        params = list(inspect.signature(target).parameters)[1:]  # self
        if op.route is not Route.EVERY:
            params = params[1:]  # the project
        passed = [arg.param or arg.name for arg in op.args] + list(op.context)
        assert set(passed) <= set(params), (op.name, passed, params)
    public = {name for name in vars(StorageEndpoint) if not name.startswith("_")}
    assert public == set(TABLE)
    assert callable(StorageEndpoint.batch)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[tuple[Database, Any]]:
    url = f"sqlite:///{tmp_path}/herald.sqlite"
    migrations.upgrade(url)
    db = Database(make_engine(url, pool_size=4))
    yield db, config.load([])
    db.dispose()


class RecordingRouter(pools.Router):
    """A router that records each operation's route, then routes it."""

    def __init__(self, db: Database, conf: Any) -> None:
        super().__init__(db, conf)
        self.routes: list[Route] = []

    def run(self, route: Route, cls: type, target: Any, project: str,
            kwargs: dict[str, Any]) -> Any:
        self.routes.append(route)
        return None  # the route is the point; running it needs data


def test_the_pool_router_uses_each_operations_route(storage: tuple[Database, Any]) -> None:
    db, conf = storage
    router = RecordingRouter(db, conf)
    endpoint = StorageEndpoint(db, conf, router=router)
    assert set(router._routes) == set(Route)  # the router knows every route
    direct = {"ping", "message_deliveries", "subscription_test"}  # db_for / the main db
    for op in OPERATIONS:
        if op.name in direct:
            continue
        router.routes.clear()
        args = {arg.name: _dummy(arg) for arg in op.args if arg.required}
        getattr(endpoint, op.name)(RequestContext(project_id="p"), **args)
        assert router.routes == [op.route], op.name
    assert {TABLE[name].route for name in direct} <= {Route.QUEUE, Route.MAIN}


def test_routing_without_pools_runs_on_the_main_database(
        storage: tuple[Database, Any]) -> None:
    db, conf = storage
    endpoint = StorageEndpoint(db, conf)
    ctxt = RequestContext(project_id="p", client_id="c")
    assert endpoint.queue_create(ctxt, queue="q", metadata={"a": 1}) is True
    assert endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}])
    assert endpoint.queue_list(ctxt)["queues"] == [{"name": "q"}]
    assert endpoint.health(ctxt)["message_volume"]["total"] == 1
    assert endpoint.subscription_delete_connection(ctxt, gateway_id="g",
                                                   connection_id="c") == 0
    assert pools.merge_results([{"a": 1}, {"a": 2}]) == {"a": 3}
    assert pools.merge_results([1, 2]) == 3


# -- adding an operation: one entry, one controller method ---------------------------------

FAKE = Operation(
    "queue_metadata_probe", (Arg("queue"),), False, Route.QUEUE,
    "Queue metadata could not be probed.", Coalescing.ALONE, "queues.get_metadata",
    doc="(test) The stored metadata, through a new table entry only.")


def test_an_operation_added_to_the_table_works_end_to_end(
        storage: tuple[Database, Any]) -> None:
    db, conf = storage
    table = (*OPERATIONS, FAKE)
    api_class = with_operations(type("ProbeAPI", (StorageAPI,), {}), table)
    endpoint = endpoint_class(table)(db, conf)
    caller = InProcessCaller(endpoint, threads=2)
    api: Any = api_class(caller)
    ctxt = RequestContext(project_id="p", client_id="c")

    async def scenario() -> tuple[Any, Any]:
        await api.queue_create(ctxt, "q", {"colour": "red"})
        alone = await api.queue_metadata_probe(ctxt, "q")
        batched = await caller.call(ctxt, "batch", ops=[
            coalescer.op_to_wire(ctxt, "queue_metadata_probe", {"queue": "q"}),
            coalescer.op_to_wire(ctxt, "queue_metadata_probe", {"queue": "none"})])
        return alone, batched

    try:
        alone, batched = asyncio.run(scenario())
    finally:
        caller.stop()
    assert alone == {"colour": "red"}
    assert batched == [{"result": {"colour": "red"}}, {"result": None}]
    # The real proxy and endpoint never heard of it.
    assert not hasattr(StorageAPI, FAKE.name) and not hasattr(StorageEndpoint, FAKE.name)
