"""Dead-letter redrive requests (docs/dead-letter-redrive.md), for both edges.

``POST /v2/queues/{dlq}/redrive`` and the websocket's ``queue_redrive`` take
``{}`` or any of ``destination`` (a queue name, not the dead-letter queue
itself), ``max_per_second`` and ``limit`` (integers >= 1). Anything else is
a 400 naming the field. Nothing here calls storage.
"""

from __future__ import annotations

from typing import Any

from herald.common.edge.headers import queue_identification_problem
from herald.common.errors import BadRequest, InvalidBody

#: The fastest a redrive may be asked to move messages (a second's worth is
#: at most a few transactions of a worker).
MAX_PER_SECOND = 10_000
#: The most messages one redrive may be asked to move.
MAX_LIMIT = 1_000_000_000
OPTIONS = ("destination", "max_per_second", "limit")


def _positive(document: dict[str, Any], name: str, maximum: int) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBody(f'The value of the "{name}" field must be a int.')
    if not 1 <= value <= maximum:
        raise BadRequest(f'The value of the "{name}" field must be at least 1 and at most '
                         f"{maximum}.")
    return value


def redrive_request(document: Any, queue: str, project_id: str | None) -> dict[str, Any]:
    """The storage arguments of a redrive of ``queue`` from its request body
    (None or absent: ``{}``)."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidBody("Document type not supported.")
    unknown = sorted(set(document) - set(OPTIONS))
    if unknown:
        raise BadRequest(f"Unknown redrive option {unknown[0]!r}; the options are "
                         + ", ".join(OPTIONS) + ".")
    destination = document.get("destination")
    if destination is not None:
        if not isinstance(destination, str):
            raise InvalidBody('The value of the "destination" field must be a string.')
        problem = queue_identification_problem(destination, project_id)
        if problem:
            raise BadRequest(f"Bad destination: {problem}")
        if destination == queue:
            raise BadRequest("A redrive's destination must be another queue than the one "
                             "it empties.")
    return {"destination": destination,
            "max_per_second": _positive(document, "max_per_second", MAX_PER_SECOND),
            "limit": _positive(document, "limit", MAX_LIMIT)}
