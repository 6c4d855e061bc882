"""Request context: who is asking, for which project, under which request id.

A ``RequestContext`` is created by an edge service for each request, travels
in the RPC context to the storage worker, and is what storage code reads the
project from (and, with tracing on, the trace context the request is in).
The current request id is also kept in a context variable so
that every log line of the request can carry it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import uuid
from typing import Any

_current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "herald_request_id", default="-"
)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def current_request_id() -> str:
    return _current_request_id.get()


def set_current_request_id(request_id: str) -> contextvars.Token[str]:
    return _current_request_id.set(request_id)


@dataclasses.dataclass(frozen=True)
class RequestContext:
    project_id: str
    client_id: str = ""
    request_id: str = dataclasses.field(default_factory=new_request_id)
    roles: tuple[str, ...] = ()
    #: W3C traceparent of the span this request is in (``herald.common.tracing``);
    #: empty while tracing is off. In the RPC context, hence signed with it.
    traceparent: str = ""
    #: Names one storage operation across every send of it (``OsloCaller``
    #: re-sends an unanswered call to another worker): the worker records a
    #: write under it, so a second send finds the first one's outcome.
    operation_id: str = ""
    #: Which send of the operation this is (1: the first).
    attempt: int = 1

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "project_id": self.project_id,
            "client_id": self.client_id,
            "request_id": self.request_id,
            "roles": list(self.roles),
        }
        if self.traceparent:  # absent while tracing is off: the wire is unchanged
            data["traceparent"] = self.traceparent
        # Only when set: the in-process caller and older edges send neither.
        if self.operation_id:
            data["operation_id"] = self.operation_id
        if self.attempt != 1:
            data["attempt"] = self.attempt
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestContext:
        return cls(
            project_id=data.get("project_id", ""),
            client_id=data.get("client_id", ""),
            request_id=data.get("request_id") or new_request_id(),
            roles=tuple(data.get("roles") or ()),
            traceparent=str(data.get("traceparent") or ""),
            operation_id=str(data.get("operation_id") or ""),
            attempt=int(data.get("attempt") or 1),
        )
