"""The table ``make bench`` prints: each figure of docs/performance.md against its target.

``summary_rows`` turns the phases' results into rows (figure, measured,
target, met, cores busy); ``bench.harness.format_table`` lays them out. This
module must not run anything: it only reads ``PhaseResult`` objects.
"""

from __future__ import annotations

from bench.fanout import OPENING
from bench.harness import PhaseResult


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
    for name, label, target_ms in (
            ("fanout_1k", "broadcast to 1,000, post/0.5 s", 100),
            ("fanout_10k", "broadcast to 10,000 (2 gateways), 1 post/s", 250)):
        if (r := get(name)) is not None:
            push = r.latency.get("push", {})
            rows.append((label, f"p99 {push.get('p99_ms', 0):.0f} ms "
                                f"({r.notes.get('delivered')}/{r.notes.get('expected')} "
                                f"frames to {r.notes.get('subscribers')})",
                         f"p99 <= {target_ms} ms, all delivered",
                         verdict(push.get("p99_ms", 1e9) <= target_ms
                                 and r.notes.get("delivered") == r.notes.get("expected")),
                         "-"))
    if (r := get("fanout_1k")) is not None:
        took = r.notes.get("subscribe_seconds", 0)
        rows.append((f"subscribing {r.notes.get('subscribers'):,} connections",
                     f"{took:.2f} s (connect + subscription_create, {OPENING} at a time)",
                     "< 5 s", verdict(took < 5), "-"))
    if (r := get("fanout_sustained")) is not None:
        rate = r.notes.get("pushes_per_s", 0)
        rows.append(("sustained websocket pushes", f"{rate:,.0f} pushes/s "
                     f"({r.notes.get('delivered')}/{r.notes.get('expected')} to "
                     f"{r.notes.get('subscribers')})", ">= 20,000/s, all delivered",
                     verdict(rate >= 20000
                             and r.notes.get("delivered") == r.notes.get("expected")), "-"))
    if (r := get("idle_10k")) is not None:
        per = r.notes.get("kib_per_connection")
        before = r.latency.get("request_before", {}).get("p99_ms", 0)
        during = r.latency.get("request_idle", {}).get("p99_ms", 0)
        rows.append((f"{r.notes.get('connections'):,} idle websockets",
                     f"{per if per is not None else '?'} KiB/connection, request p99 "
                     f"{during:.0f} ms (vs {before:.0f} ms)", "<= 20 KiB/connection",
                     verdict(per is not None and per <= 20), "-"))
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
