"""What a post becomes: its checks against the queue's metadata and its rows.

Every post path (``posting``: the single post, the idempotent post, a
coalesced batch to one queue, a batch to several queues) turns a post into
the ``messages`` rows it inserts with these functions, so the rules live
once: the post size cap (the queue's ``_max_messages_post_size`` and
``[limits] max_messages_post_size``), default TTL and delay (the queue's
``_default_message_ttl`` / ``_default_message_delay``, semantics.md §6), and
the optional ``MD5:`` checksum (``[DEFAULT] enable_checksum``).

Contract: pure functions of their arguments (the config is only read).
They raise ``errors.BadRequest`` / ``errors.InvalidBody`` for a post the
queue refuses; they never touch the database, take locks or read the clock
(the caller passes ``now``, the same for every row of a statement set).
Checks that do not need the queue's metadata belong to the edge
(``herald.common.edge``), not here.

Thread-safety: stateless; safe from any thread.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from oslo_config import cfg

from herald.common import errors, ids
from herald.common.rpc import serializer
from herald.storage import base


def post_request(messages: list[dict[str, Any]], body_size: int, client_id: str | None,
                 request_id: str | None, traceparent: str = "",
                 operation_key: str | None = None) -> dict[str, Any]:
    """One post as ``MessagePoster.post_many`` and ``post_to_queues`` take it
    (``traceparent`` only while tracing: the post's span, for its outbox rows;
    ``operation_key``: recorded with the post, ``idempotency``)."""
    post = {"messages": messages, "body_size": body_size, "client_id": client_id,
            "request_id": request_id, "operation_key": operation_key}
    if traceparent:
        post["traceparent"] = traceparent
    return post


def checksum(body: Any) -> str | None:
    """``MD5:<hex>`` of ``json.dumps(body)`` (default separators); None for a null body."""
    if body is None:
        return None
    text = json.dumps(serializer.encode(body))
    return "MD5:" + hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def check_size(conf: cfg.ConfigOpts, metadata: dict[str, Any], body_size: int) -> None:
    """Refuse a post larger than the queue's cap or the configured one."""
    limit = conf.limits.max_messages_post_size
    queue_limit = metadata.get("_max_messages_post_size")
    if queue_limit and isinstance(queue_limit, int) and not isinstance(queue_limit, bool):
        effective = min(queue_limit, limit)
        if body_size > effective:
            raise errors.BadRequest(
                "Message collection size is too large. The max size for current "
                f"queue is {effective}. It is calculated by max size = "
                f"min(max_messages_post_size_config: {limit}, "
                f"max_messages_post_size_queue: {queue_limit})."
            )
    if body_size > limit:
        raise errors.BadRequest(f"Message collection size is too large. Max size {limit}")


def delay_of(conf: cfg.ConfigOpts, message: dict[str, Any], queue_delay: Any) -> int:
    """Seconds before ``message`` becomes visible on a queue whose
    ``_default_message_delay`` is ``queue_delay``."""
    # Quirk kept (semantics.md §6): a per-message delay only counts on a
    # queue with a truthy _default_message_delay.
    if not queue_delay:
        return 0
    delay = message.get("delay")
    if delay is None:
        delay = queue_delay
    if not isinstance(delay, int):
        raise errors.InvalidBody('The value of the "delay" field must be a int.')
    maximum = conf.limits.max_message_delay
    if not 0 <= int(delay) <= maximum:
        raise errors.BadRequest(
            f"The Delay TTL for a message may not exceed {maximum} seconds, "
            "and must be at least 0 seconds long."
        )
    return int(delay)


def rows_of(conf: cfg.ConfigOpts, project: str, queue: str, metadata: dict[str, Any],
            items: list[dict[str, Any]], client: str, now: float,
            with_checksum: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``messages`` rows of one post and what the pipeline sees of them
    (``{"id", "body", "ttl", "delay"}`` each), in request order."""
    queue_ttl = metadata.get("_default_message_ttl")
    default_ttl = (queue_ttl if queue_ttl and isinstance(queue_ttl, int)
                   else conf.limits.default_message_ttl)
    queue_delay = metadata.get("_default_message_delay")
    rows = []
    accepted = []
    for item in items:
        body = item.get("body")
        ttl = item.get("ttl")
        ttl = default_ttl if ttl is None else int(ttl)
        delay = delay_of(conf, item, queue_delay)
        rows.append({
            "id": ids.new_id(),
            "project": project,
            "queue": queue,
            "body": base.dump_body(body),
            "ttl": ttl,
            "created": now,
            "expires": now + ttl,
            "visible_at": now + delay,
            "client_id": client,
            "claim_id": None,
            "claim_expires": None,
            "claim_count": 0,
            "checksum": checksum(body) if with_checksum else None,
            "group_id": item.get("group"),
        })
        accepted.append({"id": rows[-1]["id"], "body": body, "ttl": ttl, "delay": delay})
    return rows, accepted
