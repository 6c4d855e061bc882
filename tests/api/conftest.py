"""Fixtures of the REST API tests: a real embedded stack on a loop thread.

One ``Stack`` per test module: ``herald.testing.stack.EmbeddedStack`` (a
storage worker on SQLite under ``tmp_path`` behind an ``InProcessCaller`` --
the same JSON serialization as RabbitMQ -- and the REST API on port 0 on an
asyncio loop in a background thread) with the API started. Tests speak real
HTTP with ``requests``. Each test gets a fresh project id, so tests sharing a
stack never see each other's queues.

The caller is ``herald.testing.faults.FaultyCaller``: calls about queues
named ``down-*`` fail as an unreachable storage would (503), ``bug-*`` as a
storage bug would (500), ``crash-*`` with an untyped exception, and
``slow-*`` take ``SLOW_SECONDS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from herald.testing import clock as fake_clock
from herald.testing.clock import FakeClock
from herald.testing.faults import FaultyCaller
from herald.testing.stack import EmbeddedStack

__all__ = ["SLOW_SECONDS", "Client", "FakeClock", "FaultyCaller", "Stack", "assert_error"]

SLOW_SECONDS = 0.5


class Stack(EmbeddedStack):
    """The embedded stack with the REST API started (``base_url``)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, slow_seconds=SLOW_SECONDS, loop_name="api-test-loop")
        self.start_api()


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
    return fake_clock.install(monkeypatch)


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
