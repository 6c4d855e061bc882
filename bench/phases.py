"""The phases of ``make bench``: what load each one offers, in which order.

Phases (each bounded by ``--duration`` seconds and ``--max-requests``):
post_1, post_10, list, claim_delete, ws_post, e2e_latency, push_webhook,
push_websocket, the broadcasts to many websocket subscribers of
``bench.fanout`` (fanout_1k, fanout_10k, fanout_sustained, idle_10k),
deep_queue (claim latency on a small queue, then on a queue bulk-loaded
with ``--deep-messages`` rows), claim_delete_1_worker (distributed only:
one storage worker stopped). ``ALL_PHASES`` is their
order; ``Bench`` has one method per phase and keeps the results.

The deep queue is filled by a direct ``INSERT ... SELECT`` through the
storage schema's ``messages`` table (rows exactly like a post writes them,
valid ids, 1 KiB bodies), because posting 1,000,000 messages through the API
would take minutes of this benchmark's time and measure nothing new.

This module must not contain what a simulated client does (``bench.roles``),
statistics (``bench.harness``) or the report (``bench.report``). One
``Bench`` runs on one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bench import fanout, roles
from bench.harness import PhaseResult, latency_summary, run_phase
from bench.targets import Target

ALL_PHASES = ["post_1", "post_10", "list", "claim_delete", "ws_post", "e2e_latency",
              "push_webhook", "push_websocket", "fanout_1k", "fanout_10k",
              "fanout_sustained", "idle_10k", "deep_queue", "claim_delete_1_worker"]


def bulk_load(database_url: str, queue: str, count: int) -> float:
    """Insert ``count`` messages into ``queue`` with one INSERT ... SELECT.

    Rows are what ``MessageController.post`` writes (1 KiB bodies, valid
    32-hex ids, no claim, visible now, a day to live); on PostgreSQL the
    table is then vacuumed and checkpointed (see below). Returns seconds
    taken, all of it included.
    """
    from herald.storage.base import dump_body

    engine = sa.create_engine(database_url)
    now = time.time()
    text = dump_body({"t": 0, "seq": 0, "pad": "x" * 1000})
    columns = ("id, project, queue, body, ttl, created, expires, visible_at, client_id, "
               "claim_count")
    started = time.perf_counter()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(
                f"INSERT INTO messages ({columns}) "
                "SELECT md5(random()::text || g::text), :project, :queue, :body, 86400, "
                ":now, :now + 86400, :now, '', 0 FROM generate_series(1, :n) AS g"),
                {"project": roles.PROJECT, "queue": queue, "body": text, "now": now,
                 "n": count})
        else:
            conn.execute(sa.text(
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
                f"INSERT INTO messages ({columns}) "
                "SELECT lower(hex(randomblob(16))), :project, :queue, :body, 86400, "
                ":now, :now + 86400, :now, '', 0 FROM g"),
                {"project": roles.PROJECT, "queue": queue, "body": text, "now": now,
                 "n": count})
    if engine.dialect.name == "postgresql":
        # A queue that grew to 1,000,000 messages over time has been vacuumed
        # (hint bits, visibility map) and its WAL checkpointed. Right after a
        # 1 GB bulk insert neither is true, and the claim phase would measure
        # PostgreSQL writing hint bits and flushing the checkpoint instead.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM (ANALYZE) messages"))
            conn.execute(sa.text("CHECKPOINT"))
    else:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE messages"))
            conn.commit()
    engine.dispose()
    return time.perf_counter() - started


async def fill(session: aiohttp.ClientSession, url: str, queues: list[str],
               per_queue: int) -> None:
    """Put ``per_queue`` messages in each queue through the API (10 per post)."""
    rest = roles.Rest(session, url)
    # A few posters per queue, so filling is quick but not a phase of its own;
    # together they post ``per_queue`` (each its share, rounded up to a post).
    posters = 4

    async def one(queue: str, share: int) -> None:
        for start in range(0, share, 10):
            messages = [{"body": roles.body(start + i), "ttl": 3600} for i in range(10)]
            status, document = await rest.request("POST", f"/v2/queues/{queue}/messages",
                                                  {"messages": messages})
            if status != 201:
                raise RuntimeError(f"fill {queue}: HTTP {status} {document}")

    share = -(-per_queue // posters)
    await asyncio.gather(*(one(queue, share) for queue in queues for _ in range(posters)))


# -- phases --------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, target: Target,
                 session: aiohttp.ClientSession) -> None:
        self.args = args
        self.target = target
        self.session = session
        self.results: dict[str, PhaseResult] = {}
        self.run_id = uuid.uuid4().hex[:6]
        self.queues = [f"q{self.run_id}-{i}" for i in range(args.queues)]

    def rest(self) -> roles.Rest:
        return roles.Rest(self.session, self.target.url)

    def queue_for(self, i: int) -> str:
        return self.queues[i % len(self.queues)]

    async def phase(self, name: str, role_list: list[Any], **kwargs: Any) -> PhaseResult:
        result = await run_phase(name, role_list, self.args.duration, self.args.max_requests,
                                 self.target.processes, **kwargs)
        self.results[name] = result
        print(f"  {name}: {result.requests_per_s} req/s, {result.messages_per_s} msg/s, "
              f"errors {result.errors}, latency {json.dumps(result.latency)}",
              file=sys.stderr, flush=True)
        return result

    async def post_1(self) -> None:
        await self.phase("post_1", [roles.producer(self.rest(), self.queue_for(i), 1)
                                    for i in range(self.args.concurrency)])

    async def post_10(self) -> None:
        await self.phase("post_10", [roles.producer(self.rest(), self.queue_for(i), 10)
                                     for i in range(self.args.concurrency)])

    async def list(self) -> None:
        # 80 pages a queue: one empty page at each queue's end per 81 requests.
        await fill(self.session, self.target.url, self.queues, 800)
        await self.phase("list", [roles.observer(self.rest(), self.queue_for(i))
                                  for i in range(self.args.concurrency)])

    async def _consume(self, name: str) -> None:
        # Enough messages that the consumers never run dry at the target rate.
        need = int(self.args.consume_target * self.args.duration * 1.5) // len(self.queues)
        await fill(self.session, self.target.url, self.queues, need)
        await self.phase(name, [roles.consumer(self.rest(), self.queue_for(i))
                                for i in range(self.args.concurrency)])

    async def claim_delete(self) -> None:
        await self._consume("claim_delete")

    async def claim_delete_1_worker(self) -> None:
        if not self.target.stop_worker("storage-2"):
            print("  claim_delete_1_worker: skipped (needs the distributed mode with 2 "
                  "workers)", file=sys.stderr)
            return
        await self._consume("claim_delete_1_worker")

    async def ws_post(self) -> None:
        clients = [await roles.WsClient(self.session, self.target.ws_url).connect()
                   for _ in range(self.args.concurrency)]
        try:
            await self.phase("ws_post", [roles.ws_producer(c, self.queue_for(i))
                                         for i, c in enumerate(clients)])
        finally:
            for client in clients:
                await client.close()

    async def e2e_latency(self) -> None:
        queue = f"e2e-{self.run_id}"
        sent: list[float] = []
        role_list = [roles.paced_producer(self.rest(), queue, self.args.push_rate, sent)]
        role_list += [roles.consumer(self.rest(), queue, latency_kind="post_to_claim")
                      for _ in range(8)]
        await self.phase("e2e_latency", role_list,
                         notes={"offered_rate": self.args.push_rate})

    async def push_webhook(self) -> None:
        queue = f"hook-{self.run_id}"
        received: list[float] = []

        async def hook(request: web.Request) -> web.Response:
            document = await request.json()
            sent = roles.find_sent_time(document)
            if sent is not None:
                received.append(time.time() - sent)
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            rest = self.rest()
            status, document = await rest.request(
                "POST", f"/v2/queues/{queue}/subscriptions",
                {"subscriber": f"http://127.0.0.1:{port}/hook", "ttl": 3600, "options": {}})
            if status not in (201, 200):
                self.results["push_webhook"] = blocked("push_webhook", f"subscription: HTTP "
                                                        f"{status} {document}")
                return
            await self._push_phase("push_webhook", queue, received)
        finally:
            await runner.cleanup()

    async def push_websocket(self) -> None:
        queue = f"wspush-{self.run_id}"
        received: list[float] = []
        client = await roles.WsClient(self.session, self.target.ws_url).connect()
        reply = await client.call("subscription_create",
                                  {"queue_name": queue, "ttl": 3600, "options": {}})
        if reply["headers"]["status"] != 201:
            await client.close()
            self.results["push_websocket"] = blocked(
                "push_websocket", f"subscription_create: {reply}")
            return

        async def listen() -> None:
            assert client.ws is not None
            async for frame in client.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                sent = roles.find_sent_time(json.loads(frame.data))
                if sent is not None:
                    received.append(time.time() - sent)

        listener = asyncio.create_task(listen())
        try:
            await self._push_phase("push_websocket", queue, received)
        finally:
            listener.cancel()
            await client.close()

    async def _push_phase(self, name: str, queue: str, received: list[float]) -> None:
        sent: list[float] = []
        result = await self.phase(name, [roles.paced_producer(self.rest(), queue,
                                                              self.args.push_rate, sent)],
                                  notes={"offered_rate": self.args.push_rate})
        # Stragglers: wait a little for deliveries still on their way.
        deadline = time.monotonic() + 5
        while len(received) < result.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        result.latency["push"] = latency_summary(received)
        result.notes["delivered"] = len(received)
        result.notes["posted"] = result.messages

    # -- broadcasts (bench.fanout) -------------------------------------------

    def _record(self, result: PhaseResult) -> None:
        self.results[result.name] = result
        print(f"  {result.name}: latency {json.dumps(result.latency)}, "
              f"notes {json.dumps(result.notes)}", file=sys.stderr, flush=True)

    def scaled(self, count: int) -> int:
        return max(1, round(count * self.args.fanout_scale))

    async def fanout_1k(self) -> None:
        self._record(await fanout.broadcast_phase(
            "fanout_1k", self.session, self.rest(), [self.target.ws_url] * self.scaled(1000),
            f"fan1k-{self.run_id}", interval=0.5, duration=self.args.duration))

    async def fanout_10k(self) -> None:
        urls = self.target.ws_urls or [self.target.ws_url]
        self._record(await fanout.broadcast_phase(
            "fanout_10k", self.session, self.rest(),
            [urls[i % len(urls)] for i in range(self.scaled(10_000))], f"fan10k-{self.run_id}",
            interval=1.0, duration=self.args.duration))

    async def fanout_sustained(self) -> None:
        self._record(await fanout.broadcast_phase(
            "fanout_sustained", self.session, self.rest(),
            [self.target.ws_url] * self.scaled(1000),
            f"fansus-{self.run_id}", interval=0.0, duration=self.args.duration, posters=4))

    async def idle_10k(self) -> None:
        pid = self.target.processes.get(self.target.gateway_process)
        self._record(await fanout.idle_phase(self.session, self.target.ws_url, pid,
                                             self.scaled(10_000)))

    async def deep_queue(self) -> None:
        if not self.target.database_url:
            print("  deep_queue: skipped (no database to bulk-load)", file=sys.stderr)
            return
        shallow, deep = f"shallow-{self.run_id}", f"deep-{self.run_id}"
        consumers = 8
        await fill(self.session, self.target.url, [shallow], 5000)
        await self.phase("claim_shallow", [roles.consumer(self.rest(), shallow)
                                           for _ in range(consumers)])
        status, _ = await self.rest().request("PUT", f"/v2/queues/{deep}", {})
        loaded = await asyncio.to_thread(bulk_load, self.target.database_url, deep,
                                         self.args.deep_messages)
        print(f"  deep_queue: {self.args.deep_messages} rows bulk-loaded in {loaded:.1f} s",
              file=sys.stderr)
        await self.phase("claim_deep", [roles.consumer(self.rest(), deep)
                                        for _ in range(consumers)],
                         notes={"queued": self.args.deep_messages, "load_seconds": loaded})


def blocked(name: str, why: str) -> PhaseResult:
    return PhaseResult(name=name, seconds=0, requests=0, messages=0, errors=1, empty=0,
                       requests_per_s=0, messages_per_s=0, latency={}, cpu_seconds={},
                       notes={"blocked": why})
