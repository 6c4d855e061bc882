"""``make bench``: start Herald, run every load phase, stop it, print a table.

This module is the command line: it parses the options, picks where Herald
runs (``bench.targets``: ``--mode distributed`` by default, ``--mode
embedded``, or ``--url``/``--ws-url`` for a running Herald), runs the phases
in order (``bench.phases``) and writes the JSON of every phase (``--json``,
default ``bench-results.json``) and the table of the issue's figures against
their targets (``bench.report``) on stdout.

This module must not contain load logic (``bench.roles``, ``bench.phases``),
statistics (``bench.harness``) or the report's rows (``bench.report``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench import fanout, roles
from bench.harness import PhaseResult, format_table, machine_cores, run_phase
from bench.phases import ALL_PHASES, Bench, blocked
from bench.report import summary_rows
from bench.targets import Target, distributed, embedded, external


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
    parser.add_argument("--fanout-scale", type=float, default=1.0,
                        help="scale of the broadcast phases' connection counts (1,000 and "
                             "10,000 at 1.0; the bench's own tests run them small)")
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help=f"comma-separated subset of {','.join(ALL_PHASES)}")
    parser.add_argument("--env", action="append", default=[], type=lambda s: s.split("=", 1),
                        metavar="OS_GROUP__OPTION=value", help="extra service settings")
    parser.add_argument("--trace-ratio", type=float, default=0.0, metavar="RATIO",
                        help="trace this share of requests (e.g. 0.1), exported over OTLP/HTTP "
                             "to a sink in this process (herald.testing.otlp_sink); 0: off")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument("--metrics", choices=("on", "off"),
                        default=os.environ.get("HERALD_BENCH_METRICS", "on"),
                        help="Prometheus metrics of the started services (off: [metrics] "
                        "port = 0, which also skips the request-path hooks); default "
                        "$HERALD_BENCH_METRICS or on")
    args = parser.parse_args(argv)
    if args.metrics == "off":
        args.env.append(["OS_METRICS__PORT", "0"])
    return args


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
                    bench.results.setdefault(name, blocked(name, f"failed: {exc!r}"))
        return {name: result.to_json() for name, result in bench.results.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    # 10,000 websockets (idle_10k, fanout_10k): a descriptor each, here and in
    # the gateway, which inherits the limit; and room for them on the gateway.
    print(f"open files: {fanout.raise_open_files()}", file=sys.stderr)
    args.env.insert(0, ["OS_WS_GATEWAY__MAX_CONNECTIONS", "20000"])
    sink = None
    if args.trace_ratio > 0:
        from herald.testing.otlp_sink import OTLPSink

        # Counts, never decodes: the load generator keeps its CPU.
        sink = OTLPSink(keep=False)
        args.env.extend(sink.env(sampler="parentbased_traceidratio", ratio=args.trace_ratio,
                                 delay_ms=None).items())
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
                "metrics": args.metrics,
                "loadavg_before": load, "cpus": machine_cores(), "phases": results}
    if sink is not None:
        document["tracing"] = {"ratio": args.trace_ratio, "exports": sink.requests,
                               "export_bytes": sink.bytes}
        sink.close()
    Path(args.json).write_text(json.dumps(document, indent=2))
    rows = summary_rows({name: PhaseResult(**data) for name, data in results.items()})
    print(f"\nHerald bench, mode {document['mode']}, {args.concurrency} clients, "
          f"{args.duration:.0f} s/phase, metrics {args.metrics}, "
          f"load before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + (f", tracing {args.trace_ratio:.0%} sampled" if sink is not None else ""))
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
