"""``python -m bench.group_claims``: what a claim costs on a queue with groups.

Issue 23 asks for the claim cost on a 1,000,000-message queue with 10,000
message groups, against today's claim. On a fresh PostgreSQL database
(dropped afterwards) this bulk-loads, with one INSERT ... SELECT each (not
through the API), a queue of ``--messages`` ungrouped messages and a queue
of as many messages spread round-robin over ``--groups`` groups (a group's
messages interleaved with every other group's, the hardest layout for the
group rules: a group's next message is ``--groups`` positions further), then
times ``claims.create`` through the storage endpoint in process (no RPC, no
HTTP: the storage's own cost, which is what the group rules change):

* ``plain``: a consumer claims 10 and deletes them, on the ungrouped queue
  (today's claim: the fast path);
* ``grouped``: the same consumer on the grouped queue (the group-aware path);
* ``grouped, N held``: claims of 10 while the claims before them still hold
  their groups (none deleted), so each claim must pass over every held
  group's head first; reported at 1,000 and 5,000 groups held.

``--plain-only`` runs the first phase alone, without the group columns: run
with another checkout's ``PYTHONPATH`` (e.g. main's ``.pkg``) it measures
that code's claim on the same data, for a before/after comparison.
Prints one table; takes a few minutes (the loads dominate).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PROJECT = "bench"
BODY = '{"pad": "' + "x" * 200 + '"}'


def _load(engine: sa.Engine, queue: str, count: int, groups: int | None) -> float:
    """One INSERT ... SELECT of ``count`` messages (and the queue row)."""
    now = time.time()
    started = time.perf_counter()
    group_column, group_value = (("", "") if groups is None
                                 else (", group_id", ", 'g' || (g % :groups)"))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO queues (project, name, metadata, created) "
                             "VALUES (:project, :queue, '{}', :now)"),
                     {"project": PROJECT, "queue": queue, "now": now})
        if groups is not None:
            conn.execute(sa.text("UPDATE queues SET grouped = true WHERE name = :queue"),
                         {"queue": queue})
        conn.execute(sa.text(
            "INSERT INTO messages (id, project, queue, body, ttl, created, expires, visible_at, "
            f"client_id, claim_count{group_column}) "
            "SELECT md5(random()::text || g::text), :project, :queue, :body, 86400, :now, "
            f":now + 86400, :now, '', 0{group_value} FROM generate_series(1, :n) AS g"),
            {"project": PROJECT, "queue": queue, "body": BODY, "now": now, "n": count,
             "groups": groups})
    return time.perf_counter() - started


def _settle(engine: sa.Engine) -> None:
    # As a queue that grew over time would be: vacuumed, analyzed, checkpointed.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM (ANALYZE) messages"))
        conn.execute(sa.text("VACUUM (ANALYZE) queues"))
        conn.execute(sa.text("CHECKPOINT"))


def _time(rounds: int, claim: Callable[[], dict[str, Any]],
          after: Callable[[dict[str, Any]], None]) -> dict[str, float]:
    latencies, got = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        result = claim()
        latencies.append((time.perf_counter() - started) * 1000)
        got += len(result["messages"])
        after(result)
    latencies.sort()
    return {"median_ms": statistics.median(latencies),
            "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
            "messages_per_claim": got / rounds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--plain-only", action="store_true")
    args = parser.parse_args(argv)

    from herald.common import config
    from herald.common.context import RequestContext
    from herald.storage import migrations
    from herald.storage.endpoint import StorageEndpoint
    from herald.storage.engine import Database, make_engine

    name = f"herald_groupbench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        migrations.upgrade(url)
        engine = sa.create_engine(url)
        loads = {"plain": _load(engine, "plain", args.messages, None)}
        if not args.plain_only:
            loads["grouped"] = _load(engine, "grouped", args.messages, args.groups)
        _settle(engine)
        engine.dispose()
        db = Database(make_engine(url, pool_size=4))
        endpoint = StorageEndpoint(db, config.load([]))
        ctxt = RequestContext(project_id=PROJECT, client_id=str(uuid.uuid4()))

        def claim(queue: str) -> Callable[[], dict[str, Any]]:
            return lambda: endpoint.claim_create(ctxt, queue=queue, ttl=3600, grace=60,
                                                 limit=10)

        def delete(queue: str) -> Callable[[dict[str, Any]], None]:
            def after(result: dict[str, Any]) -> None:
                if result["messages"]:
                    endpoint.message_delete_many(
                        ctxt, queue=queue, message_ids=[m["id"] for m in result["messages"]],
                        claim_ids=[result["claim_id"]])
            return after

        rows.append(("plain (claim 10, delete)", _time(args.rounds, claim("plain"),
                                                       delete("plain"))))
        if not args.plain_only:
            rows.append(("grouped (claim 10, delete)",
                         _time(args.rounds, claim("grouped"), delete("grouped"))))
            held = 0
            for target in (1000, 5000):
                # Claims that keep their groups: 10 groups more held per claim.
                _time(max(0, (target - held) // 10 - 50), claim("grouped"), lambda _: None)
                rows.append((f"grouped, ~{target} groups held (claim 10, keep)",
                             _time(50, claim("grouped"), lambda _: None)))
                held = target
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"{args.messages:,} messages per queue; {args.groups:,} groups; "
          + ", ".join(f"{queue} loaded in {seconds:.1f} s" for queue, seconds in loads.items()))
    print(f"{'phase':<48} {'median ms':>10} {'p95 ms':>8} {'msgs/claim':>11}")
    for label, figures in rows:
        print(f"{label:<48} {figures['median_ms']:>10.2f} {figures['p95_ms']:>8.2f} "
              f"{figures['messages_per_claim']:>11.1f}")


if __name__ == "__main__":
    main()
