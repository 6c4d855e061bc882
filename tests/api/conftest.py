"""Fixtures of the REST API tests: a real embedded stack on a loop thread.

One ``Stack`` per test module: a storage worker on SQLite under ``tmp_path``
(``file://`` tooz, no RPC server) behind an ``InProcessCaller`` -- the same
JSON serialization as RabbitMQ -- and an ``APIService`` on port 0 running on
an asyncio loop in a background thread. Tests speak real HTTP with
``requests``. Each test gets a fresh project id, so tests sharing a stack
never see each other's queues.

The caller is wrapped so that calls about queues named ``down-*`` fail as an
unreachable storage would (503), ``bug-*`` as a storage bug would (500),
``crash-*`` with an untyped exception, and ``slow-*`` take ``SLOW_SECONDS``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from oslo_config import cfg

from herald.api.service import APIService
from herald.common import config, coordination, errors
from herald.common.context import RequestContext
from herald.common.rpc.caller import InProcessCaller
from herald.common.rpc.storage_api import StorageAPI
from herald.storage import clock as storage_clock

SLOW_SECONDS = 0.5


class FaultyCaller:
    """Fails or delays calls about ``down-*``, ``bug-*``, ``crash-*`` and ``slow-*``
    queues; records every call."""

    def __init__(self, inner: InProcessCaller) -> None:
        self._inner = inner
        self.calls: list[tuple[RequestContext, str, dict[str, Any]]] = []
        #: When set, every call fails as an unreachable storage would.
        self.all_down = False

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        self.calls.append((ctxt, method, kwargs))
        queue = str(kwargs.get("queue", ""))
        if queue.startswith("down-") or self.all_down:
            raise errors.ServiceUnavailable(
                "The storage service did not answer in time. Please try again in a few seconds.")
        if queue.startswith("bug-"):
            raise errors.InternalError("KeyError: 'oops'")
        if queue.startswith("crash-"):
            raise RuntimeError("boom")
        if queue.startswith("slow-"):
            await asyncio.sleep(SLOW_SECONDS)
        return await self._inner.call(ctxt, method, **kwargs)

    def stop(self) -> None:
        self._inner.stop()


class Stack:
    def __init__(self, tmp: Path) -> None:
        from herald.storage.worker import StorageWorker

        # A private ConfigOpts: nothing here uses oslo.messaging (which needs
        # the global one), and per-test overrides cannot leak to other suites.
        self.conf = config.load([], conf=cfg.ConfigOpts())
        self.conf.set_override("connection", f"sqlite:///{tmp}/h.sqlite", group="storage")
        self.conf.set_override("backend_url", f"file://{tmp}/coord", group="coordination")
        self.conf.set_override("port", 0, group="api")
        self.conf.set_override("bind", "127.0.0.1", group="api")
        self.worker = StorageWorker(self.conf, coordination.new_member_id(), serve_rpc=False)
        self.worker.start()
        self.caller = FaultyCaller(InProcessCaller(self.worker.endpoint))
        self.storage = StorageAPI(self.caller)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="api-test-loop",
                                        daemon=True)
        self._thread.start()
        self.service = APIService(self.conf, self.storage, local=self.worker.local)

        async def start() -> None:
            self.service.start()

        self.run(start())
        self.base_url = f"http://127.0.0.1:{self.service.port}"
        self._overrides: list[tuple[str, str | None]] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def override(self, name: str, value: Any, group: str | None = None) -> None:
        self.conf.set_override(name, value, group=group)
        self._overrides.append((name, group))

    def reset_overrides(self) -> None:
        for name, group in self._overrides:
            self.conf.clear_override(name, group=group)
        self._overrides.clear()

    def close(self) -> None:
        try:
            self.run(self.service.stop(grace=2.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.caller.stop()
            self.worker.stop()


class Client:
    """``requests`` with the headers python-zaqarclient sends, for one project."""

    def __init__(self, base_url: str, project: str | None = None,
                 client_id: str | None = None) -> None:
        self.base_url = base_url
        self.project = project or f"p-{uuid.uuid4().hex[:12]}"
        self.client_id = client_id or uuid.uuid4().hex
        self.session = requests.Session()

    def headers(self, extra: dict[str, str] | None = None,
                drop: tuple[str, ...] = ()) -> dict[str, str]:
        headers = {"Client-ID": self.client_id, "X-Project-ID": self.project,
                   "Content-Type": "application/json", "Accept": "application/json"}
        for name in drop:
            headers.pop(name, None)
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, json_body: Any = None,
                data: bytes | str | None = None, headers: dict[str, str] | None = None,
                drop: tuple[str, ...] = (), params: Any = None) -> requests.Response:
        if json_body is not None:
            import json

            data = json.dumps(json_body)
        return self.session.request(method, self.base_url + path, data=data, params=params,
                                    headers=self.headers(headers, drop), timeout=30)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def head(self, path: str, **kw: Any) -> requests.Response:
        return self.request("HEAD", path, **kw)

    # -- shortcuts ------------------------------------------------------------

    def post_messages(self, queue: str, count: int = 1, ttl: int | None = None,
                      **kw: Any) -> list[str]:
        messages = []
        for i in range(count):
            message: dict[str, Any] = {"body": {"n": i}}
            if ttl is not None:
                message["ttl"] = ttl
            messages.append(message)
        resp = self.post(f"/v2/queues/{queue}/messages", json_body={"messages": messages}, **kw)
        assert resp.status_code == 201, resp.text
        return [href.rsplit("/", 1)[1] for href in resp.json()["resources"]]

    def claim(self, queue: str, ttl: int = 300, grace: int = 60,
              limit: int | None = None) -> tuple[str, list[dict[str, Any]]]:
        path = f"/v2/queues/{queue}/claims" + (f"?limit={limit}" if limit else "")
        resp = self.post(path, json_body={"ttl": ttl, "grace": grace})
        assert resp.status_code == 201, resp.text
        return resp.headers["Location"].rsplit("/", 1)[1], resp.json()["messages"]


class FakeClock:
    def __init__(self, start: float) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("api"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def api(stack: Stack) -> Iterator[Client]:
    client = Client(stack.base_url)
    try:
        yield client
    finally:
        stack.reset_overrides()
        stack.caller.all_down = False
        client.session.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Moves the storage workers' time (the worker runs in this process)."""
    fake = FakeClock(storage_clock.now())
    monkeypatch.setattr(storage_clock, "now", fake)
    return fake


def assert_error(resp: requests.Response, status: int, title: str | None = None,
                 description: str | None = None) -> dict[str, Any]:
    """The response is a Zaqar error body with this status (title exact,
    description as a substring, as the reference's tests match it)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    if title is not None:
        assert body["title"] == title, body
    if description is not None:
        assert description in body.get("description", ""), body
    return body
