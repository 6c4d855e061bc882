"""The broadcast phases of ``make bench`` (issue 27): many websocket subscribers on one queue.

* ``fanout_1k``: 1,000 connections (on the target's first gateway) subscribe
  to one queue, a single-message post every 0.5 s; p99 from post to frame at
  the client (target: <= 100 ms, embedded mode).
* ``fanout_10k``: 10,000 connections spread over the target's gateways
  (distributed mode starts two), one post per second; p99 (<= 250 ms).
* ``fanout_sustained``: 1,000 subscribers, posts back to back from a few
  posters; websocket pushes delivered per second (>= 20,000/s).
* ``idle_10k``: 10,000 idle websockets on the first gateway: its RSS growth
  per connection (<= 20 KiB) and the p99 of requests on random connections
  among them, against the same requests before they were opened.

Every phase counts the frames it expected and those that arrived
(``notes.delivered`` / ``notes.expected``). Latency is taken where a frame
arrives, from the send time its body carries (``roles.body``). The
subscribers are ``bench.ws_subscriber``'s lean ones, so that the bench's
one process can take 10,000 frames a second and more without falling
behind what it measures. This module
must not start Herald (``bench.targets``) or lay out the report
(``bench.report``).
"""

from __future__ import annotations

import asyncio
import gc
import random
import resource
import time
from typing import Any

import aiohttp

from bench import roles
from bench.harness import PhaseResult, latency_summary
from bench.ws_subscriber import Subscriber

#: Connections opened (and subscribed) at once while setting a phase up.
OPENING = 200


def raise_open_files(wanted: int = 65536) -> int:
    """Raise this process's open-file limit (inherited by the services the
    bench starts) towards ``wanted``; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def open_clients(session: aiohttp.ClientSession,
                       urls: list[str]) -> list[roles.WsClient]:
    """Connect one client per URL, ``OPENING`` at a time."""
    gate = asyncio.Semaphore(OPENING)

    async def one(url: str) -> roles.WsClient:
        async with gate:
            return await roles.WsClient(session, url).connect()

    return list(await asyncio.gather(*(one(url) for url in urls)))


async def open_subscribers(urls: list[str], queue: str,
                           latencies: dict[str, list[float]]) -> list[Subscriber]:
    """One subscriber per URL subscribed to ``queue``, ``OPENING`` at a time;
    each records its frames' latencies in ``latencies[url]``."""
    gate = asyncio.Semaphore(OPENING)

    async def one(url: str) -> Subscriber:
        async with gate:
            subscriber = await Subscriber.connect(url, latencies.setdefault(url, []))
            reply = await subscriber.call("subscription_create",
                                          {"queue_name": queue, "ttl": 3600})
            if reply["headers"]["status"] != 201:
                raise RuntimeError(f"subscription_create: {reply}")
            return subscriber

    return list(await asyncio.gather(*(one(url) for url in urls)))


async def close_clients(clients: list[roles.WsClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


def result(name: str, seconds: float, posts: int, latencies: list[float],
           notes: dict[str, Any]) -> PhaseResult:
    return PhaseResult(name=name, seconds=round(seconds, 2), requests=posts, messages=posts,
                       errors=notes.get("expected", 0) - notes.get("delivered", 0), empty=0,
                       requests_per_s=round(posts / seconds, 1) if seconds else 0,
                       messages_per_s=round(len(latencies) / seconds, 1) if seconds else 0,
                       latency={"push": latency_summary(latencies)}, cpu_seconds={},
                       notes=notes)


async def broadcast_phase(name: str, session: aiohttp.ClientSession, rest: roles.Rest,
                          urls: list[str], queue: str, interval: float, duration: float,
                          posters: int = 1) -> PhaseResult:
    """Subscribe one connection per URL to ``queue``, then post: every
    ``interval`` seconds (one poster), or back to back (``interval`` 0,
    ``posters`` of them) for ``duration`` seconds."""
    started = time.monotonic()
    by_gateway: dict[str, list[float]] = {}
    Subscriber.slowest.clear()
    clients = await open_subscribers(urls, queue, by_gateway)
    setup = time.monotonic() - started
    # The 10,000 subscribers' objects live until the end: a full collection
    # walking them in the middle of a broadcast would be the bench's pause,
    # not Herald's (a collection took ~100 ms here).
    gc.collect()
    gc.freeze()
    posts = 0
    failed = 0

    async def poster() -> None:
        nonlocal posts, failed
        deadline = time.monotonic() + duration
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            status, _ = await rest.request("POST", f"/v2/queues/{queue}/messages",
                                           {"messages": [{"body": roles.body(posts),
                                                          "ttl": 600}]})
            if status == 201:
                posts += 1
            else:
                failed += 1

    began = time.monotonic()
    await asyncio.gather(*(poster() for _ in range(posters)))
    posted_for = time.monotonic() - began
    expected = posts * len(clients)
    deadline = time.monotonic() + 10  # stragglers
    while sum(map(len, by_gateway.values())) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    drained = time.monotonic() - began
    for client in clients:
        client.close()
    gc.unfreeze()
    latencies = [latency for values in by_gateway.values() for latency in values]
    return result(name, drained if not interval else posted_for, posts, latencies, {
        "subscribers": len(clients), "gateways": len(set(urls)),
        "subscribe_seconds": round(setup, 2), "expected": expected,
        "delivered": len(latencies), "failed_posts": failed,
        "bad_frames": sum(client.errors for client in clients),
        "pushes_per_s": round(len(latencies) / drained, 1) if drained else 0,
        "offered_rate": 1 / interval if interval else None,
        # Which gateway the slowest frames came through.
        "p99_ms_by_gateway": {url: latency_summary(values).get("p99_ms")
                              for url, values in sorted(by_gateway.items())},
        # ... and in which posts (the first post after subscribing reads the
        # subscriptions the later ones find remembered).
        "slowest_frame_ms_by_post": [round(Subscriber.slowest[sent] * 1000, 1)
                                     for sent in sorted(Subscriber.slowest)][:50]})


async def idle_phase(session: aiohttp.ClientSession, url: str, pid: int | None,
                     count: int, requests: int = 400) -> PhaseResult:
    """``count`` idle connections on one gateway: RSS growth per connection,
    and request p99 on random connections among them vs before."""

    async def requests_p99(clients: list[roles.WsClient]) -> list[float]:
        took: list[float] = []
        for _ in range(requests):
            client = random.choice(clients)
            started = time.perf_counter()
            reply = await client.call("queue_list", {"limit": 1})
            if reply["headers"]["status"] == 200:
                took.append(time.perf_counter() - started)
        return took

    probes = await open_clients(session, [url] * 8)
    before_latency = await requests_p99(probes)
    before = rss_kib(pid) if pid else 0
    started = time.monotonic()
    clients = await open_clients(session, [url] * count)
    opened = time.monotonic() - started
    await asyncio.sleep(2)  # the gateway's allocator settles
    after = rss_kib(pid) if pid else 0
    during_latency = await requests_p99(clients)
    await close_clients(clients + probes)
    per_connection = (after - before) / count if pid else None
    return PhaseResult(
        name="idle_10k", seconds=round(opened, 2), requests=len(during_latency), messages=0,
        errors=requests - len(during_latency), empty=0, requests_per_s=0, messages_per_s=0,
        latency={"request_before": latency_summary(before_latency),
                 "request_idle": latency_summary(during_latency)},
        cpu_seconds={}, notes={"connections": count, "rss_before_kib": before,
                               "rss_after_kib": after, "open_seconds": round(opened, 2),
                               "kib_per_connection": (round(per_connection, 2)
                                                      if per_connection is not None else None)})
