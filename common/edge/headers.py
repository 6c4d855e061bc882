"""Request-header rules: Client-ID, project, queue identification, Accept,
idempotency key (rest-v2.md §0.2, websocket.md §5).

One decision per rule, two renderings where the spec words them apart:

* REST refuses a header with its own title per case (``RefusedHeader``,
  e.g. ``Wrong UUID value`` / ``Malformed hexadecimal UUID.``);
* the websocket says the same thing as a plain ``BadRequest`` whose text is
  the reference's ``exception`` (``websocket_*`` functions below).

Where each edge applies a rule is the edge's business (REST checks every
``/v2`` request in its pipeline; the websocket checks Client-ID only in
``message_list``/``message_post``, queue names only where a queue may be
created), not this module's. Pure functions; no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from herald.common.edge.limits import PROJECT_ID_MAX, QUEUE_NAME_MAX
from herald.common.errors import BadRequest, HeraldError

_QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")
_ACCEPTABLE = frozenset({"*/*", "application/*", "application/json"})
PROJECT_HEADERS = ("X-Project-ID", "X-Tenant-Id", "X-Tenant")
IDEMPOTENCY_KEY_MAX = 255


class RefusedHeader(HeraldError):
    """A 400 with a per-case title (the REST rendering of a header refusal).

    It never crosses the RPC boundary, so unlike ``herald.common.errors``
    types it may take two arguments. ``websocket_text`` is what the
    websocket says for the same refusal: the description, or the title when
    the reference gives only a title.
    """

    status = 400

    def __init__(self, title: str, description: str = "") -> None:
        super().__init__(description)
        self.title = title

    @property
    def websocket_text(self) -> str:
        return self.description or self.title


def is_uuid(value: str) -> bool:
    """A UUID as Zaqar accepts it: 32 hex digits, case-insensitive, with hyphens,
    surrounding braces and a ``urn:uuid:`` prefix tolerated."""
    text = value.strip().lower()
    if text.startswith("urn:uuid:"):
        text = text[len("urn:uuid:"):]
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return _UUID_HEX.match(text.replace("-", "")) is not None


def client_id(value: str | None, limits: Any) -> str:
    """The Client-ID, checked as ``[limits] client_id_uuid_safe`` says."""
    if value is None:
        raise RefusedHeader("Missing header value", 'The "Client-Id" header is required.')
    if limits.client_id_uuid_safe == "strict":
        if not is_uuid(value):
            raise RefusedHeader("Wrong UUID value", "Malformed hexadecimal UUID.")
    else:
        low, high = limits.min_length_client_id, limits.max_length_client_id
        if not low <= len(value) <= high:
            raise RefusedHeader(f"Length of client id must be at least {low} and no greater "
                                f"than {high}.")
    return value


def websocket_client_id(value: str, limits: Any) -> None:
    """``client_id`` worded for the websocket (the schema made it a string)."""
    try:
        client_id(value, limits)
    except RefusedHeader as exc:
        raise BadRequest(exc.websocket_text) from exc


def project(headers: Any) -> str:
    """The project of a noauth REST request: the first project header present."""
    for header in PROJECT_HEADERS:
        project_id = headers.get(header)
        if project_id is None:
            continue
        if project_id == "":
            raise RefusedHeader("Empty project header not allowed",
                                "X-PROJECT-ID cannot be an empty string. Specify the right "
                                "header X-PROJECT-ID and retry.")
        return str(project_id)
    raise RefusedHeader("Project-Id Missing", "The header X-PROJECT-ID was missing")


def queue_identification_problem(name: str, project_id: str | None) -> str | None:
    """Why a queue name (with its project) is refused, in the reference's
    websocket words; None when it is fine. Checked in the reference's order."""
    if project_id is not None and len(project_id) > PROJECT_ID_MAX:
        return f"Project ids may not be more than {PROJECT_ID_MAX} characters long."
    if len(name) > QUEUE_NAME_MAX:
        return f"Queue names may not be more than {QUEUE_NAME_MAX} characters long."
    if not _QUEUE_NAME.match(name):
        return "Queue names may only contain ASCII letters, digits, underscores, and dashes."
    return None


def queue_identification(name: str, project_id: str, kind: str = "queue") -> None:
    """REST: one sentence for every problem, titled for the resource ``kind``
    (``queue`` or ``topic``)."""
    if queue_identification_problem(name, project_id) is not None:
        raise RefusedHeader(f"Invalid {kind} identification",
                            "The format of the submitted queue name or project id is not "
                            "valid.")


def websocket_queue_identification(name: str, project_id: str | None) -> None:
    problem = queue_identification_problem(name, project_id)
    if problem is not None:
        raise BadRequest(problem)


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header admits ``application/json`` (with q > 0)."""
    for media_range in accept.split(","):
        media, *params = media_range.split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0 and media.strip().lower() in _ACCEPTABLE:
            return True
    return False


def idempotency_key_ok(key: Any) -> bool:
    """An idempotency key (Herald extension; REST header ``Idempotency-Key``,
    websocket body ``idempotency_key``): 1..255 printable ASCII characters,
    since it travels in an HTTP header and is stored as a database key."""
    return (isinstance(key, str) and 0 < len(key) <= IDEMPOTENCY_KEY_MAX and key.isascii()
            and key.isprintable())
