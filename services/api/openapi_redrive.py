"""The OpenAPI paths of dead-letter redrive (docs/dead-letter-redrive.md).

Kept beside ``herald.api.openapi`` (which merges them into its document and
whose helpers build them) so that module stays within its line budget. Must
not read configuration or call storage.
"""

from __future__ import annotations

from typing import Any


def paths() -> dict[str, Any]:
    from herald.api import openapi as oa  # at call time: openapi imports this module

    q = "/v2/queues/{queue_name}"
    task = {"type": "object",
            "required": ["id", "href", "status", "moved", "total", "skipped", "skipped_queues"],
            "properties": {"status": {"enum": ["running", "done"]},
                           # With pooling: left in the DLQ, their queue lives on another pool.
                           "skipped": {"type": "integer"},
                           "skipped_queues": {"type": "array", "items": {"type": "string"}}}}
    return {
        f"{q}/redrive": {"post": oa._op(
            "Move a dead-letter queue's messages back (docs/dead-letter-redrive.md)",
            {"202": oa._json(task, "Started"), "409": oa._error(
                "A redrive of the queue runs, or the destination lives on another pool")},
            [oa._QUEUE], body={"type": "object"})},
        f"{q}/redrive/{{redrive_id}}": {"get": oa._op("Progress of a redrive", {
            "200": oa._json(task, "The task"), "404": oa._error("No such redrive")},
            [oa._QUEUE, oa._path_param("redrive_id", oa._ID)])},
    }
