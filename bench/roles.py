"""The load generator's roles: what one simulated client does, in a loop.

Each role is a coroutine factory returning ``async def role(recorder)``: it
repeats its operation until ``recorder.done()`` and reports every request
(latency, messages carried) or error to the recorder. Roles speak Herald's
public APIs only (REST over aiohttp with keep-alive, the websocket API over
persistent aiohttp websockets), like any Zaqar client would; they never
touch the database (the deep-queue bulk load in ``bench.run`` does, and says
so). Message bodies are ~1 KiB JSON objects carrying the send time ``t``
(wall clock, same machine) so end-to-end and push latencies can be taken
where the message arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from bench.harness import Recorder, Role

PROJECT = "bench"
_PAD = "x" * 1000


def body(seq: int = 0) -> dict[str, Any]:
    """A ~1 KiB message body stamped with the send time."""
    return {"t": time.time(), "seq": seq, "pad": _PAD}


def headers(client_id: str | None = None) -> dict[str, str]:
    return {"Client-ID": client_id or str(uuid.uuid4()), "X-Project-ID": PROJECT,
            "Content-Type": "application/json"}


class Rest:
    """A REST client bound to one API root and one Client-ID."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.headers = headers()

    async def request(self, method: str, path: str, json_body: Any = None) -> tuple[int, Any]:
        data = None if json_body is None else json.dumps(json_body)
        async with self.session.request(method, self.url + path, data=data,
                                        headers=self.headers) as response:
            raw = await response.read()
            document = json.loads(raw) if raw else None
            return response.status, document


async def timed(recorder: Recorder, kind: str, coro: Any, expect: tuple[int, ...],
                messages: int = 0) -> tuple[int, Any] | None:
    """Await one request; record its latency or the error. None on error."""
    started = time.perf_counter()
    try:
        status, document = await coro
    except Exception as exc:  # connection reset, timeout...: count, go on
        recorder.error(f"{kind}: {exc!r}")
        return None
    if status not in expect:
        recorder.error(f"{kind}: HTTP {status} {str(document)[:200]}")
        return None
    recorder.request(kind, time.perf_counter() - started, messages)
    return status, document


def producer(rest: Rest, queue: str, batch: int) -> Role:
    """POST ``batch`` messages per request, as fast as answers come."""

    async def role(recorder: Recorder) -> None:
        seq = 0
        while not recorder.done():
            messages = [{"body": body(seq + i), "ttl": 3600} for i in range(batch)]
            seq += batch
            await timed(recorder, "post",
                        rest.request("POST", f"/v2/queues/{queue}/messages",
                                     {"messages": messages}), (201,), batch)

    return role


def observer(rest: Rest, queue: str, page: int = 10) -> Role:
    """Page through a queue with markers, from the start again at its end."""

    async def role(recorder: Recorder) -> None:
        marker: str | None = None
        while not recorder.done():
            path = f"/v2/queues/{queue}/messages?limit={page}&echo=true"
            if marker:
                path += f"&marker={marker}"
            result = await timed(recorder, "list", rest.request("GET", path), (200,))
            if result is None:
                continue
            document = result[1] or {}
            got = document.get("messages", [])
            recorder.messages += len(got)
            marker = None
            if len(got) == page:
                for link in document.get("links", []):
                    href = link.get("href", "")
                    if "marker=" in href:
                        marker = href.split("marker=", 1)[1].split("&", 1)[0]

    return role


def consumer(rest: Rest, queue: str, limit: int = 10,
             latency_kind: str | None = None) -> Role:
    """Claim up to ``limit`` messages, delete each with its claim id.

    Messages count once deleted. ``latency_kind`` also records, per claimed
    message, the time from its posting (body ``t``) to the claim's answer.
    """

    async def role(recorder: Recorder) -> None:
        while not recorder.done():
            result = await timed(recorder, "claim",
                                 rest.request("POST", f"/v2/queues/{queue}/claims?limit={limit}",
                                              {"ttl": 60, "grace": 60}), (201, 204))
            if result is None:
                continue
            status, document = result
            if status == 204:
                recorder.empty += 1
                await asyncio.sleep(0.005)  # empty queue: do not spin
                continue
            now = time.time()
            for message in document.get("messages", []):
                if latency_kind:
                    sent = (message.get("body") or {}).get("t")
                    if sent is not None:
                        recorder.latency(latency_kind, now - sent)
                await timed(recorder, "delete", rest.request("DELETE", message["href"]),
                            (204,), 1)

    return role


def paced_producer(rest: Rest, queue: str, rate: float, sent: list[float],
                   max_in_flight: int = 64) -> Role:
    """POST single messages at ``rate`` per second (open loop: each post is
    its own task, so a slow answer does not lower the offered rate)."""

    async def role(recorder: Recorder) -> None:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        pending: set[asyncio.Task[Any]] = set()
        seq = 0
        while not recorder.done():
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            seq += 1
            if len(pending) >= max_in_flight:
                # The system is not keeping up: count the send we skip rather
                # than queue without bound (latency would measure our queue).
                recorder.error("paced post skipped: too many posts in flight")
                continue
            sent.append(time.time())
            task = asyncio.create_task(timed(
                recorder, "post",
                rest.request("POST", f"/v2/queues/{queue}/messages",
                             {"messages": [{"body": body(seq), "ttl": 3600}]}), (201,), 1))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=30)

    return role


class WsClient:
    """One persistent websocket connection speaking the Zaqar v2 envelope."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": PROJECT}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> WsClient:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        return self

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a request, return its reply (skipping pushed notifications)."""
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"action": action, "headers": self.headers,
                                           "body": payload}))
        while True:
            frame = await self.ws.receive()
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket closed: {frame.type!r}")
            reply = json.loads(frame.data)
            if isinstance(reply, dict) and "request" in reply:
                return reply

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def ws_producer(client: WsClient, queue: str) -> Role:
    """message_post of one message per frame, awaiting each reply."""

    async def role(recorder: Recorder) -> None:
        seq = 0
        while not recorder.done():
            seq += 1

            async def post(seq: int = seq) -> tuple[int, Any]:
                reply = await client.call("message_post", {
                    "queue_name": queue, "messages": [{"body": body(seq), "ttl": 3600}]})
                return reply["headers"]["status"], reply["body"]

            await timed(recorder, "ws_post", post(), (201,), 1)

    return role


def find_sent_time(document: Any) -> float | None:
    """The ``t`` stamp of a notification payload (``body.t``), wherever nested."""
    if isinstance(document, dict):
        inner = document.get("body")
        if isinstance(inner, dict) and isinstance(inner.get("t"), int | float):
            return float(inner["t"])
        for value in document.values():
            found = find_sent_time(value)
            if found is not None:
                return found
    return None
