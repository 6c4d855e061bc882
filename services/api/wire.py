"""Wire shapes of the REST API: hrefs and the JSON objects built from the
storage RPC replies (``StoredMessage`` etc., see ``storage_api``).

Message objects carry exactly the keys python-zaqarclient accepts; never add
others (the one exception: ``group``, only on messages posted with one, a
Herald extension those clients never post). Every href is a relative path
starting with ``/v2/``. Pure functions.
"""

from __future__ import annotations

from typing import Any

from herald.common.edge import shapes


def queue_href(queue: str) -> str:
    return f"/v2/queues/{queue}"


def message_href(queue: str, message_id: str, claim_id: str | None = None) -> str:
    href = f"/v2/queues/{queue}/messages/{message_id}"
    return f"{href}?claim_id={claim_id}" if claim_id else href


def claim_href(queue: str, claim_id: str) -> str:
    return f"/v2/queues/{queue}/claims/{claim_id}"


def message_object(queue: str, stored: dict[str, Any]) -> dict[str, Any]:
    """``{id, href, ttl, age, body[, checksum][, group]}`` from a StoredMessage
    (``group`` only for a message posted with one: docs/message-groups.md)."""
    obj = {
        "id": stored["id"],
        "href": message_href(queue, stored["id"], stored.get("claim_id")),
        "ttl": stored["ttl"],
        "age": stored["age"],
        "body": stored["body"],
    }
    if stored.get("checksum"):
        obj["checksum"] = stored["checksum"]
    if stored.get("group") is not None:
        obj["group"] = stored["group"]
    return obj


def stats_object(queue: str, stats: dict[str, Any],
                 collection: str = "queues") -> dict[str, Any]:
    """``{"messages": {free, claimed, total[, oldest, newest]}}``; oldest and
    newest are Zaqar's: the stored message with ``href`` in place of ``id``."""
    messages: dict[str, Any] = {
        "free": stats.get("free", 0),
        "claimed": stats.get("claimed", 0),
        "total": stats.get("total", 0),
    }
    if messages["total"]:
        for key in ("oldest", "newest"):
            edge = stats.get(key)
            if edge:
                obj = shapes.stats_message(edge)
                obj["href"] = f"/v2/{collection}/{queue}/messages/{obj.pop('id')}"
                messages[key] = obj
    return {"messages": messages}
