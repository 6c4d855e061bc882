"""Reply shapes that both edges share.

Most shapes differ per edge by the spec (REST messages carry ``href``, the
websocket's do not); the popped message is the one both give in the same
form (rest-v2.md "pop", websocket.md ``message_delete_many``): no href, and
no longer claimed by anyone. The oldest and newest messages of queue stats
have Zaqar's storage shape on both edges (the REST edge then trades the id
for an href, as Zaqar does). Pure functions of a storage reply.
"""

from __future__ import annotations

from typing import Any


def popped(stored: dict[str, Any], with_checksum: bool = True) -> dict[str, Any]:
    """A popped StoredMessage on the wire; the websocket never shows checksums."""
    obj = {
        "id": stored["id"],
        "ttl": stored["ttl"],
        "age": stored["age"],
        "body": stored["body"],
        "claim_count": 0,
        "claim_id": None,
    }
    if with_checksum and stored.get("checksum"):
        obj["checksum"] = stored["checksum"]
    return obj


def stats_message(stored: dict[str, Any], with_checksum: bool = True) -> dict[str, Any]:
    """The oldest or newest message of queue stats, in the order and with the
    keys of Zaqar's stores: ``{id, age, ttl, body, claim_id, claim_count,
    created[, checksum][, group]}``. Clients read ``oldest["body"]``; ``group``
    only for a message posted with one, as in listings (docs/message-groups.md)."""
    obj = {
        "id": stored["id"],
        "age": stored["age"],
        "ttl": stored["ttl"],
        "body": stored["body"],
        "claim_id": stored.get("claim_id"),
        "claim_count": stored.get("claim_count", 0),
        "created": stored["created"],
    }
    if with_checksum and stored.get("checksum"):
        obj["checksum"] = stored["checksum"]
    if stored.get("group") is not None:
        obj["group"] = stored["group"]
    return obj


def redrive_task(queue: str, task: dict[str, Any]) -> dict[str, Any]:
    """A redrive task on the wire (REST and websocket alike): ``{"id", "href",
    "status", "moved", "total", ...}``, ``href`` where REST shows its progress."""
    return {"id": task["id"], "href": f"/v2/queues/{queue}/redrive/{task['id']}",
            **{key: value for key, value in task.items() if key != "id"}}
