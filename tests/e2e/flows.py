"""What the end-to-end tests do to a running Herald, whatever its topology.

``client_flow`` drives one queue through its whole life with
python-zaqarclient v2 (no auth), asserting the effect of every step, so the
distributed and the embedded topologies are held to exactly the same
behaviour. ``Rest`` is a thin raw-HTTP client for what the library hides
(status codes, error bodies, timings).
"""

from __future__ import annotations

import uuid
from typing import Any

import requests
from zaqarclient.queues.v2 import client as zaqar


def zaqar_client(url: str, project: str, client_id: str | None = None) -> zaqar.Client:
    """A python-zaqarclient v2 client without Keystone.

    The auth backend defaults to keystone, so ``backend: noauth`` is needed;
    the project goes in ``auth_opts.options.os_project_id`` (sent as
    X-Project-Id) and the Client-ID in the top-level ``client_uuid``.
    """
    return zaqar.Client(url, version=2, conf={
        "client_uuid": client_id or str(uuid.uuid4()),
        "auth_opts": {"backend": "noauth", "options": {"os_project_id": project}},
    })


def _stats(queue: Any) -> tuple[int, int, int]:
    messages = queue.stats["messages"]
    return messages["total"], messages["free"], messages["claimed"]


def _queue_names(client: zaqar.Client) -> list[str]:
    queues, _count = client.queues(limit=20)  # v2 returns (iterator, count)
    return [q.name for q in queues]


def client_flow(url: str, project: str | None = None) -> None:
    """Create, fill, browse, claim, consume and delete one queue."""
    project = project or f"e2e-{uuid.uuid4().hex[:8]}"
    producer = zaqar_client(url, project)
    name = f"flow-{uuid.uuid4().hex[:8]}"

    assert producer.ping()

    # Queue: create, list, metadata get + set, stats.
    queue = producer.queue(name, force_create=True)
    assert name in _queue_names(producer)
    metadata = queue.metadata(force_reload=True)
    assert metadata["_default_message_ttl"] == 3600, metadata
    assert metadata["_max_messages_post_size"] == 262144, metadata
    # The client turns this into add/replace/remove ops against what it just
    # read, including 'remove' of the reserved keys: the server must accept it.
    queue.metadata(new_meta={"owner": "e2e", "retries": 3})
    metadata = queue.metadata(force_reload=True)
    assert metadata["owner"] == "e2e" and metadata["retries"] == 3, metadata
    assert _stats(queue) == (0, 0, 0)

    # Post five messages; the reply names them in request order.
    posted = queue.post([{"body": {"n": n, "text": f"message {n}"}, "ttl": 300}
                         for n in range(5)])
    hrefs = posted["resources"]
    assert len(hrefs) == 5, posted
    assert all(h.startswith(f"/v2/queues/{name}/messages/") for h in hrefs), hrefs
    ids = [h.rsplit("/", 1)[1] for h in hrefs]
    assert _stats(queue) == (5, 5, 0)

    # List: the producer sees its own messages only with echo; another
    # client (other Client-ID) sees them without.
    assert list(queue.messages(limit=10)) == []
    listed = list(queue.messages(echo=True, limit=10))
    assert [m.body["n"] for m in listed] == [0, 1, 2, 3, 4]
    assert [m.id for m in listed] == ids
    consumer = zaqar_client(url, project)
    consumer_queue = consumer.queue(name, auto_create=False)
    assert [m.body["n"] for m in consumer_queue.messages(limit=10)] == [0, 1, 2, 3, 4]

    # Get one, and several by id.
    message = queue.message(ids[2])
    assert message.body == {"n": 2, "text": "message 2"} and message.ttl == 300
    assert sorted(m.body["n"] for m in queue.messages(ids[0], ids[4])) == [0, 4]

    # Claim the two oldest; they leave the free pool.
    claim = consumer_queue.claim(ttl=120, grace=60, limit=2)
    claimed = list(claim)
    assert [m.body["n"] for m in claimed] == [0, 1]
    assert all(f"claim_id={claim.id}" in m.href for m in claimed)
    assert _stats(queue) == (5, 3, 2)
    assert "claim_id=" in queue.message(ids[0]).href

    # Renew the claim: the server keeps the new ttl.
    claim.update(ttl=180, grace=60)
    assert consumer_queue.claim(id=claim.id).ttl == 180

    # Delete one claimed message with its claim id.
    claimed[0].delete()
    assert _stats(queue) == (4, 3, 1)
    assert [m.body["n"] for m in queue.messages(echo=True, limit=10)] == [2, 3, 4]

    # Release the claim: its remaining message is free again.
    claim.delete()
    assert _stats(queue) == (4, 4, 0)
    assert [m.body["n"] for m in queue.messages(echo=True, limit=10)] == [1, 2, 3, 4]

    # Pop one (taken and deleted at once), delete one by id, bulk-delete the rest.
    popped = list(consumer_queue.pop(count=1))
    assert len(popped) == 1 and popped[0].body["n"] in (1, 2, 3, 4)
    assert _stats(queue) == (3, 3, 0)
    remaining = [m for m in queue.messages(echo=True, limit=10)]
    assert popped[0].body["n"] not in [m.body["n"] for m in remaining]
    remaining[0].delete()
    assert _stats(queue) == (2, 2, 0)
    queue.delete_messages(*[m.id for m in remaining[1:]])
    assert _stats(queue) == (0, 0, 0)

    # Delete the queue: gone from the listing, stats of nothing.
    queue.delete()
    assert name not in _queue_names(producer)
    assert _stats(queue) == (0, 0, 0)


class Rest:
    """Raw HTTP calls with Herald's headers, for status codes and timings."""

    def __init__(self, url: str, project: str | None = None, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({
            "Client-ID": str(uuid.uuid4()),
            "X-Project-ID": project or f"e2e-{uuid.uuid4().hex[:8]}",
        })

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.url}{path}", **kwargs)

    def create_queue(self, name: str) -> requests.Response:
        return self.request("PUT", f"/v2/queues/{name}")

    def post(self, queue: str, *bodies: Any, ttl: int = 3600) -> requests.Response:
        return self.request("POST", f"/v2/queues/{queue}/messages",
                            json={"messages": [{"body": b, "ttl": ttl} for b in bodies]})

    def get_message(self, queue: str, message_id: str) -> requests.Response:
        return self.request("GET", f"/v2/queues/{queue}/messages/{message_id}")

    def stats(self, queue: str) -> dict[str, Any]:
        response = self.request("GET", f"/v2/queues/{queue}/stats")
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()["messages"]
