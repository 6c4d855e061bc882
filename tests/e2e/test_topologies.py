"""The same python-zaqarclient flow against both ways of running Herald.

- distributed: ``herald db upgrade``, two ``herald storage`` workers and one
  ``herald api``, over RabbitMQ, PostgreSQL and Redis;
- embedded: ``herald run`` as ``make run`` starts it (SQLite and file://
  tooz under ./data of its working directory), including a restart that must
  keep the data and a Ctrl-C that must end the process cleanly.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from herald.testing.topology import Topology
from tests.e2e.flows import Rest, client_flow


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_client_flow_distributed(topology: Topology) -> None:
    storage_1, storage_2, api = topology.distributed(storage_workers=2, apis=1)
    client_flow(api.url)
    # Both workers are still serving: nothing crashed along the way.
    assert storage_1.running() and storage_2.running() and api.running()


def test_client_flow_embedded_restart_and_ctrl_c(local_topology: Topology) -> None:
    workdir = local_topology.workdir / "embedded"
    herald = local_topology.embedded("run", cwd=workdir)
    client_flow(herald.url)

    # Data written before a restart...
    rest = Rest(herald.url, project="restart")
    queue = f"durable-{uuid.uuid4().hex[:8]}"
    assert rest.create_queue(queue).status_code == 201
    posted = rest.post(queue, {"n": 1}, {"n": 2})
    assert posted.status_code == 201, posted.text
    ids = [href.rsplit("/", 1)[1] for href in posted.json()["resources"]]
    assert (workdir / "data").is_dir(), "herald run keeps its data under ./data"

    # ... Ctrl-C ends the process with code 0 within a few seconds ...
    herald.send(signal.SIGINT)
    started = time.monotonic()
    code = herald.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0, f"herald run exited with {code} after SIGINT"
    assert elapsed < 5, f"herald run took {elapsed:.1f} s to stop after SIGINT"

    # ... and is still there when it starts again in the same directory.
    herald = local_topology.embedded("run-again", cwd=workdir,
                                     port=int(herald.url.rsplit(":", 1)[1]))
    listed = rest.request("GET", "/v2/queues")
    assert listed.status_code == 200, listed.text
    assert queue in [q["name"] for q in listed.json()["queues"]]
    assert rest.stats(queue)["total"] == 2
    for message_id, n in zip(ids, (1, 2), strict=True):
        got = rest.get_message(queue, message_id)
        assert got.status_code == 200, got.text
        assert got.json()["body"] == {"n": n}
