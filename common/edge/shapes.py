"""Reply shapes that both edges share.

Most shapes differ per edge by the spec (REST messages carry ``href``, the
websocket's do not); the popped message is the one both give in the same
form (rest-v2.md "pop", websocket.md ``message_delete_many``): no href, and
no longer claimed by anyone. Pure functions of a storage reply.
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
