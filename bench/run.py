"""``make bench``: start Herald, run every load phase, stop it, print a table.

Modes:

* ``distributed`` (default): the production shape as local processes, on the
  machine's RabbitMQ, PostgreSQL (a fresh database, dropped afterwards) and
  Redis: ``herald db upgrade``, 2 storage workers, 1 api, 1 ws-gateway
  (started with ``tests.e2e.topology``, the end-to-end tests' launcher).
* ``embedded``: one ``herald run`` process on SQLite.
* ``--url``/``--ws-url``: an already running Herald (no start, no CPU figures
  of its processes, no worker-scaling phase, no deep queue unless
  ``--database-url`` is given).

Phases (each bounded by ``--duration`` seconds and ``--max-requests``):
post_1, post_10, list, claim_delete, ws_post, e2e_latency, push_webhook,
push_websocket, deep_queue (claim latency on a small queue, then on a queue
bulk-loaded with ``--deep-messages`` rows), claim_delete_1_worker
(distributed only: one storage worker stopped). ``--phases`` selects some.

The deep queue is filled by a direct ``INSERT ... SELECT`` through the
storage schema's ``messages`` table (rows exactly like a post writes them,
valid ids, 1 KiB bodies), because posting 1,000,000 messages through the API
would take minutes of this benchmark's time and measure nothing new.

Output: the JSON of every phase (``--json``, default ``bench-results.json``)
and a table of the issue's figures against their targets on stdout.
This module must not contain load logic (``bench.roles``) or statistics
(``bench.harness``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bench import roles
from bench.harness import PhaseResult, format_table, latency_summary, machine_cores, run_phase

ALL_PHASES = ["post_1", "post_10", "list", "claim_delete", "ws_post", "e2e_latency",
              "push_webhook", "push_websocket", "deep_queue", "claim_delete_1_worker"]

PG_ADMIN_DSN = os.environ.get("HERALD_BENCH_PG_ADMIN",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("HERALD_BENCH_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("HERALD_BENCH_REDIS", "redis://127.0.0.1:6379")


# -- the system under test ----------------------------------------------------


class Target:
    """Where Herald answers, which processes to meter, how to stop it."""

    def __init__(self) -> None:
        self.url = ""
        self.ws_url = ""
        self.database_url: str | None = None
        self.processes: dict[str, int] = {}
        self.topology: Any = None
        self.workdir: Path | None = None

    def stop_worker(self, name: str) -> bool:
        if self.topology is None or name not in self.topology.services:
            return False
        self.topology.services[name].stop()
        self.processes.pop(name, None)
        return True


@contextlib.contextmanager
def distributed(args: argparse.Namespace) -> Iterator[Target]:
    import psycopg

    from tests.e2e.topology import Backends, Topology

    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    backends = Backends(
        transport_url=RABBIT_URL, rpc_topic=f"herald-bench-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        coordination_url=f"{REDIS_URL}?namespace=herald-bench-{uuid.uuid4().hex[:8]}")
    topology = Topology(workdir, backends, env=dict(args.env))
    target = Target()
    target.database_url, target.topology, target.workdir = database_url, topology, workdir
    try:
        services = topology.distributed(storage_workers=args.workers, apis=1)
        gateway = topology.ws_gateway()
        api = next(s for s in services if s.name == "api")
        target.url = api.url or ""
        target.ws_url = (gateway.url or "").replace("http://", "ws://", 1) + "/"
        target.processes = {s.name: s.pid for s in [*services, gateway]}
        yield target
    finally:
        topology.stop_all()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"service logs kept in {workdir}", file=sys.stderr)


@contextlib.contextmanager
def embedded(args: argparse.Namespace) -> Iterator[Target]:
    from tests.e2e.topology import Topology, free_port

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    topology = Topology(workdir, None, env=dict(args.env))
    target = Target()
    target.topology, target.workdir = topology, workdir
    ws_port = free_port()
    try:
        service = topology.embedded(ws_port=ws_port)
        target.url = service.url or ""
        target.ws_url = f"ws://127.0.0.1:{ws_port}/"
        target.database_url = f"sqlite:///{workdir / 'embedded' / 'data' / 'herald.sqlite'}"
        target.processes = {"run": service.pid}
        yield target
    finally:
        topology.stop_all()
        print(f"service logs kept in {workdir}", file=sys.stderr)


@contextlib.contextmanager
def external(args: argparse.Namespace) -> Iterator[Target]:
    target = Target()
    target.url, target.ws_url, target.database_url = args.url, args.ws_url, args.database_url
    yield target


# -- helpers -------------------------------------------------------------------


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
                self.results["push_webhook"] = _blocked("push_webhook", f"subscription: HTTP "
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
            self.results["push_websocket"] = _blocked(
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


def _blocked(name: str, why: str) -> PhaseResult:
    return PhaseResult(name=name, seconds=0, requests=0, messages=0, errors=1, empty=0,
                       requests_per_s=0, messages_per_s=0, latency={}, cpu_seconds={},
                       notes={"blocked": why})


# -- report --------------------------------------------------------------------


def cores_cell(*results: PhaseResult) -> str:
    """The last column: cores busy (and the ceiling they allow) per phase."""
    cells = []
    for result in results:
        use = result.cpu_use
        if not use:
            cells.append("-")
            continue
        cell = f"{use['busy_cores']:.2f}/{use['cores']:.0f}"
        if not result.notes.get("offered_rate"):  # a paced phase has no ceiling
            cell += f", <= {use['ceiling_per_s']:,.0f}/s"
        cells.append(cell)
    return " vs ".join(cells)


def summary_rows(results: dict[str, PhaseResult]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []

    def get(name: str) -> PhaseResult | None:
        return results.get(name)

    def verdict(ok: bool) -> str:
        return "yes" if ok else "NO"

    if (r := get("post_1")) is not None:
        p99 = r.latency.get("post", {}).get("p99_ms", 0)
        rows.append(("single-message posts", f"{r.requests_per_s:.0f} req/s, p99 {p99:.0f} ms",
                     ">= 1,000 req/s, p99 <= 100 ms",
                     verdict(r.requests_per_s >= 1000 and p99 <= 100), cores_cell(r)))
    if (r := get("post_10")) is not None:
        rows.append(("10-message batch posts", f"{r.messages_per_s:.0f} msg/s",
                     ">= 9,000 msg/s", verdict(r.messages_per_s >= 9000), cores_cell(r)))
    if (r := get("claim_delete")) is not None:
        rows.append(("claim (10) + delete each", f"{r.messages_per_s:.0f} msg/s",
                     ">= 1,000 msg/s", verdict(r.messages_per_s >= 1000), cores_cell(r)))
    if (r := get("list")) is not None:
        rows.append(("list (10-message pages)", f"{r.messages_per_s:.0f} msg/s",
                     ">= 6,000 msg/s", verdict(r.messages_per_s >= 6000), cores_cell(r)))
    if (r := get("ws_post")) is not None:
        rows.append(("websocket posts (persistent)", f"{r.messages_per_s:.0f} msg/s",
                     ">= 2,000 msg/s", verdict(r.messages_per_s >= 2000), cores_cell(r)))
    for name, label in (("push_webhook", "push latency, webhook"),
                        ("push_websocket", "push latency, websocket")):
        if (r := get(name)) is not None:
            if "blocked" in r.notes:
                rows.append((label, f"blocked: {r.notes['blocked'][:60]}", "p99 <= 50 ms", "NO",
                             "-"))
                continue
            push = r.latency.get("push", {})
            rows.append((label, f"p99 {push.get('p99_ms', 0):.0f} ms "
                                f"({r.notes.get('delivered')}/{r.notes.get('posted')} "
                                f"delivered at {r.notes.get('offered_rate')}/s)",
                         "p99 <= 50 ms", verdict(bool(push.get("samples"))
                                                 and push.get("p99_ms", 1e9) <= 50),
                         cores_cell(r)))
    if (r := get("e2e_latency")) is not None:
        e2e = r.latency.get("post_to_claim", {})
        rows.append(("end to end, post -> claimed", f"p50 {e2e.get('p50_ms', 0):.0f} ms, "
                     f"p99 {e2e.get('p99_ms', 0):.0f} ms", "(no target)", "-", cores_cell(r)))
    shallow, deep = get("claim_shallow"), get("claim_deep")
    if shallow is not None and deep is not None:
        s50 = shallow.latency.get("claim", {}).get("p50_ms", 0)
        d50 = deep.latency.get("claim", {}).get("p50_ms", 0)
        ratio = d50 / s50 if s50 else float("inf")
        queued = deep.notes.get("queued", 0)
        rows.append((f"claim latency, {queued:,} queued vs small",
                     f"p50 {d50:.1f} vs {s50:.1f} ms = {ratio:.2f}x", "<= 2x",
                     verdict(ratio <= 2), cores_cell(deep, shallow)))
    two, one = get("claim_delete"), get("claim_delete_1_worker")
    if two is not None and one is not None and one.messages_per_s:
        ratio = two.messages_per_s / one.messages_per_s
        rows.append(("2 storage workers vs 1 (consumers)",
                     f"{two.messages_per_s:.0f} vs {one.messages_per_s:.0f} msg/s "
                     f"= {ratio:.2f}x", ">= 1.6x", verdict(ratio >= 1.6), cores_cell(two, one)))
    return rows


# -- entry point ---------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description="Herald load generator (make bench)")
    parser.add_argument("--mode", choices=("distributed", "embedded"), default="distributed")
    parser.add_argument("--url", help="benchmark a running Herald API instead")
    parser.add_argument("--ws-url", default="", help="its websocket gateway (with --url)")
    parser.add_argument("--database-url", help="its database, for the deep-queue bulk load")
    parser.add_argument("--concurrency", type=int, default=32, help="clients per phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--max-requests", type=int, default=1_000_000,
                        help="requests per phase at most")
    parser.add_argument("--queues", type=int, default=4, help="queues the load is spread on")
    parser.add_argument("--workers", type=int, default=2, help="storage workers (distributed)")
    parser.add_argument("--push-rate", type=float, default=200.0,
                        help="messages/s offered in the latency phases")
    parser.add_argument("--consume-target", type=float, default=1000.0,
                        help="messages/s the consumer phases are filled for")
    parser.add_argument("--deep-messages", type=int, default=1_000_000)
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help=f"comma-separated subset of {','.join(ALL_PHASES)}")
    parser.add_argument("--env", action="append", default=[], type=lambda s: s.split("=", 1),
                        metavar="OS_GROUP__OPTION=value", help="extra service settings")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    return parser.parse_args(argv)


async def bench_main(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(ALL_PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}")
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench = Bench(args, target, session)
        # Warm-up: connections, caches, JIT-less Python paths; not reported.
        await run_phase("warmup", [roles.producer(bench.rest(), bench.queue_for(i), 1)
                                   for i in range(args.concurrency)], 3.0, 10**9, {})
        for name in ALL_PHASES:  # fixed order: the 1-worker phase stops a worker
            if name in phases:
                print(f"phase {name}", file=sys.stderr, flush=True)
                try:
                    await getattr(bench, name)()
                except Exception as exc:  # one broken phase must not lose the others
                    print(f"  {name} failed: {exc!r}", file=sys.stderr)
                    bench.results.setdefault(name, _blocked(name, f"failed: {exc!r}"))
        return {name: result.to_json() for name, result in bench.results.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    if args.url:
        context = external(args)
    elif args.mode == "embedded":
        context = embedded(args)
    else:
        context = distributed(args)
    with context as target:
        # Not asyncio.run(): its shutdown joins the default executor's threads
        # without a timeout (Python 3.11), and a thread left in a blocking
        # call (aiohttp's resolver, the bulk load) kept a finished run from
        # ever stopping its topology and writing its results. loop.close()
        # lets those threads go.
        loop = asyncio.new_event_loop()
        try:
            results = loop.run_until_complete(bench_main(args, target))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    document = {"mode": "external" if args.url else args.mode,
                "concurrency": args.concurrency, "duration": args.duration,
                "loadavg_before": load, "cpus": machine_cores(), "phases": results}
    Path(args.json).write_text(json.dumps(document, indent=2))
    rows = summary_rows({name: PhaseResult(**data) for name, data in results.items()})
    print(f"\nHerald bench, mode {document['mode']}, {args.concurrency} clients, "
          f"{args.duration:.0f} s/phase, load before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(format_table(rows))
    print(f"\nfull results: {args.json}")
    return 0


def run_and_exit(argv: list[str] | None = None) -> None:
    """``main()``, then leave the process at once.

    Everything is stopped and written when ``main()`` returns. The
    interpreter's own exit could still wait forever in
    ``threading._shutdown`` for a worker thread that is already gone (seen
    after full distributed runs: the main thread alone, on a futex), so the
    benchmark leaves without it.
    """
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_and_exit()
