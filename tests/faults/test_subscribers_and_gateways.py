"""Scenario: webhook subscribers that fail, hang or reset, and a gateway SIGKILLed.

One queue, a steady stream of posts (each body carries its send time), and:

- a healthy webhook subscriber, which records each notification's latency;
  for the first ``BASELINE`` seconds it is the only subscriber (its baseline),
  then three bad ones join: one answers 500, one hangs far past the delivery
  timeout, one resets the TCP connection. The healthy subscriber must still
  get every notification, with a p95 latency close to its baseline
  (deliveries to different subscribers run concurrently);
- ``WS_CLIENTS`` websocket clients subscribed (connection subscriptions) on
  gateway 1; mid-run gateway 1 is SIGKILLed. Each client reconnects to the
  surviving gateway, subscribes again and must receive pushes there.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from herald.testing.topology import Backends, Topology, ws_url
from tests.faults.harness import Client, WSListener, fault_seconds, percentile, wait_until
from tests.webhook_receiver import LocalWebhookServer

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

BASELINE = 4.0
POST_EVERY = 0.1
WS_CLIENTS = 3
HANG_SECONDS = 30.0
DELIVERY_TIMEOUT = 2.0


class Hook(LocalWebhookServer):
    """A webhook subscriber with one behaviour: ok, fail, hang or reset."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.latencies: dict[int, float] = {}
        self.hits = 0
        self.lock = threading.Lock()
        super().__init__(f"/{behaviour}")

    def answer(self, path: str, body: bytes, request: Any) -> int | None:
        with self.lock:
            self.hits += 1
        if self.behaviour == "reset":
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
            request.connection.close()
            return None
        if self.behaviour == "hang":
            time.sleep(HANG_SECONDS)
        if self.behaviour == "ok":
            message = json.loads(body).get("body") or {}
            if "n" in message:
                with self.lock:
                    self.latencies.setdefault(message["n"], time.time() - message["sent"])
        return 500 if self.behaviour == "fail" else 200


def _poster(client: Client, queue: str, until: float, sent: list[int]) -> Callable[[], None]:
    def run() -> None:
        n = 0
        while time.monotonic() < until:
            response = client.request("POST", f"/v2/queues/{queue}/messages", json={
                "messages": [{"body": {"n": n, "sent": time.time()}, "ttl": 600}]})
            if response.status_code == 201:
                sent.append(n)
            n += 1
            time.sleep(POST_EVERY)
    return run


def test_bad_subscribers_and_a_killed_gateway(topology: Topology, backends: Backends,
                                              tmp_path: Path) -> None:
    env = {
        # A killed gateway leaves the tooz group after 3 s instead of 30.
        "OS_COORDINATION__BACKEND_URL": backends.coordination_url + "&membership_timeout=3",
        "OS_RPC__WS_TOPIC": backends.rpc_topic + "-ws",
        "OS_NOTIFICATION__DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
        "OS_NOTIFICATION__DISPATCH_INTERVAL": "0.1",
        "OS_NOTIFICATION__RETRY_DELAY_SCALE": "0.01",
    }
    topology.distributed(storage_workers=2, apis=1, env=env)
    api = topology.services["api"]
    gw1 = topology.ws_gateway("ws-1", env=env)
    gw2 = topology.ws_gateway("ws-2", env=env)
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "hooks"
    client = Client(api.url, project)
    hooks = {b: Hook(b) for b in ("ok", "fail", "hang", "reset")}
    listeners = [WSListener([ws_url(gw1), ws_url(gw2)], project, queue)
                 for _ in range(WS_CLIENTS)]
    try:
        assert client.request("POST", f"/v2/queues/{queue}/subscriptions",
                              json={"subscriber": hooks["ok"].url}).status_code == 201
        for listener in listeners:
            listener.start()
        duration = max(fault_seconds(), BASELINE + 8)
        sent: list[int] = []
        started = time.time()
        poster = threading.Thread(target=_poster(client, queue, time.monotonic() + duration,
                                                 sent), daemon=True)
        poster.start()
        time.sleep(BASELINE)
        bad_from = time.time()
        for behaviour in ("fail", "hang", "reset"):
            assert client.request("POST", f"/v2/queues/{queue}/subscriptions", json={
                "subscriber": hooks[behaviour].url}).status_code == 201
        time.sleep((duration - BASELINE) / 3)
        killed_at = time.time()
        gw1.send(signal.SIGKILL)
        poster.join(duration + 30)
        assert not poster.is_alive()
        # Every healthy notification arrives (retries included).
        wait_until(lambda: set(hooks["ok"].latencies) >= set(sent), 30,
                   "every notification at the healthy subscriber")
    finally:
        for listener in listeners:
            listener.stopping.set()
        for listener in listeners:
            listener.join(10)
        for hook in hooks.values():
            hook.close()

    ok = hooks["ok"].latencies
    baseline = [ok[n] for n in sent if n in ok and n < BASELINE / POST_EVERY * 0.8]
    # Posts sent after the bad subscribers joined (post numbers are paced).
    loaded = [lat for n, lat in ok.items()
              if n in sent and n >= (bad_from - started) / POST_EVERY]
    reconnects = [(lst.reconnected_at - killed_at) if lst.reconnected_at else None
                  for lst in listeners]
    after = [sum(1 for url, t in lst.received if url == ws_url(gw2)) for lst in listeners]
    figures = {
        "scenario": "bad webhook subscribers + gateway SIGKILL",
        "posts_acked": len(sent), "healthy_delivered": len(set(ok) & set(sent)),
        "healthy_p50_p95_baseline_s": [round(percentile(baseline, q) or 0, 3) for q in (50, 95)],
        "healthy_p50_p95_with_bad_subscribers_s": [round(percentile(loaded, q) or 0, 3)
                                                   for q in (50, 95)],
        "bad_hits": {b: hooks[b].hits for b in ("fail", "hang", "reset")},
        "ws_reconnect_s": [round(r, 2) if r is not None else None for r in reconnects],
        "ws_pushes_after_failover": after,
    }
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"\nFAULT FIGURES {figures['scenario']}: {json.dumps(figures)}\n({path})")

    assert len(sent) > 50
    assert all(hooks[b].hits > 0 for b in ("fail", "hang", "reset")), figures["bad_hits"]
    base_p95 = percentile(baseline, 95) or 0.0
    loaded_p95 = percentile(loaded, 95) or 0.0
    assert loaded_p95 <= max(1.0, 3 * base_p95), (
        f"healthy subscriber's p95 latency went from {base_p95:.2f} s to {loaded_p95:.2f} s")
    assert all(r is not None and r < 10 for r in reconnects), figures["ws_reconnect_s"]
    assert all(n > 0 for n in after), f"no pushes through the surviving gateway: {after}"
    assert gw2.running() and api.running()
