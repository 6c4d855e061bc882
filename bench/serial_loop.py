"""Serial latency benchmark: one client, post + claim + delete, for N seconds.

Against a running Herald (embedded ``herald run`` or the distributed
topology), one HTTP client repeats:

    POST   /v2/queues/<q>/messages            (1 message)
    POST   /v2/queues/<q>/claims?limit=1
    DELETE /v2/queues/<q>/messages/<id>?claim_id=<claim>

and prints requests per second, every HTTP call counting as one request,
plus the latency of each kind of call. With a single client nothing can be
batched, so this measures the cost of one request through the whole stack
(HTTP, RPC, database); it is not a throughput test.

Usage::

    python bench/serial_loop.py --url http://127.0.0.1:8888 --seconds 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

import requests


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(url: str, seconds: float, project: str) -> tuple[dict[str, list[float]], float]:
    """Loop for ``seconds``; return the timings and the loop's duration."""
    session = requests.Session()
    session.headers.update({"Client-ID": str(uuid.uuid4()), "X-Project-ID": project})
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    base = f"{url.rstrip('/')}/v2/queues/{queue}"

    def call(method: str, path: str, expect: int, **kwargs: object) -> requests.Response:
        response = session.request(method, base + path, timeout=30, **kwargs)
        if response.status_code != expect:
            sys.exit(f"{method} {path}: expected {expect}, got {response.status_code} "
                     f"{response.text[:300]}")
        return response

    call("PUT", "", 201)
    timings: dict[str, list[float]] = {"post": [], "claim": [], "delete": []}
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            call("POST", "/messages", 201, json={"messages": [{"body": {"t": t0}, "ttl": 300}]})
            t1 = time.perf_counter()
            claimed = call("POST", "/claims?limit=1", 201, json={"ttl": 60, "grace": 60})
            t2 = time.perf_counter()
            href = claimed.json()["messages"][0]["href"]  # .../messages/<id>?claim_id=<cid>
            call("DELETE", href[len(f"/v2/queues/{queue}"):], 204)
            t3 = time.perf_counter()
            timings["post"].append(t1 - t0)
            timings["claim"].append(t2 - t1)
            timings["delete"].append(t3 - t2)
    finally:
        elapsed = time.perf_counter() - started
        session.request("DELETE", base, timeout=30)
    return timings, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8888", help="Herald's API root")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to loop")
    parser.add_argument("--project", default="bench", help="X-Project-ID to use")
    args = parser.parse_args(argv)

    timings, elapsed = run(args.url, args.seconds, args.project)
    loops = len(timings["post"])
    requests_made = 3 * loops
    print(f"{args.url}: {loops} loops, {requests_made} requests in {elapsed:.1f} s "
          f"= {requests_made / elapsed:.0f} requests/s")
    for kind, values in timings.items():
        if values:
            print(f"  {kind:6s} mean {statistics.fmean(values) * 1000:6.2f} ms  "
                  f"p50 {_percentile(values, 0.5) * 1000:6.2f} ms  "
                  f"p99 {_percentile(values, 0.99) * 1000:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
