"""Typed errors that cross the RPC boundary and map to Zaqar's error bodies.

A storage worker raises one of these; oslo.messaging (or the embedded
dispatcher) rebuilds the same class on the caller's side because this module
is in ``allowed_remote_exmods``. The edge services turn it into
``{"title": ..., "description": ...}`` with ``status``.

Rules that keep the round trip working: every error takes exactly one
positional argument, ``description`` (oslo.messaging re-creates exceptions
as ``cls(*args)``), and the text a client sees is ``.description``, never
``str(exc)`` (the rebuilt remote class appends the remote traceback to it).
This module must not import anything from the services.
"""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error with a defined HTTP status and Zaqar title."""

    status: int = 500
    title: str = "Internal server error"

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description

    def to_body(self) -> dict[str, str]:
        body = {"title": self.title}
        if self.description:
            body["description"] = self.description
        return body


class BadRequest(HeraldError):
    """Semantic validation failure (limits, ranges, missing fields)."""

    status = 400
    title = "Invalid API request"


class InvalidBody(HeraldError):
    """Body missing, unparseable, of the wrong JSON type, or a bad JSON patch."""

    status = 400
    title = "Invalid request body"


class ClaimMismatch(HeraldError):
    """A message delete named a claim that does not hold the message."""

    status = 400
    title = "Unable to delete"


class MessageIsClaimed(HeraldError):
    """A claimed message was deleted without (or with another) live claim id."""

    status = 403
    title = "Unable to delete"


class ReleaseRefused(HeraldError):
    """A message release named a claim while another live claim holds the message."""

    status = 403
    title = "Unable to release"


class Forbidden(HeraldError):
    status = 403
    title = "Not authorized"


class NotFound(HeraldError):
    status = 404
    title = "Not found"


class QueueDoesNotExist(NotFound):
    @classmethod
    def of(cls, queue: str, project: str) -> QueueDoesNotExist:
        return cls(f"Queue {queue} does not exist for project {project}")


class MessageDoesNotExist(NotFound):
    @classmethod
    def of(cls, message_id: str, queue: str, project: str) -> MessageDoesNotExist:
        return cls(f"Message {message_id} does not exist in queue {queue} for project {project}")


class ClaimDoesNotExist(NotFound):
    @classmethod
    def of(cls, claim_id: str, queue: str, project: str) -> ClaimDoesNotExist:
        return cls(f"Claim {claim_id} does not exist in queue {queue} for project {project}")


class SubscriptionDoesNotExist(NotFound):
    @classmethod
    def of(cls, subscription_id: str) -> SubscriptionDoesNotExist:
        return cls(f"Subscription {subscription_id} does not exist")


class Conflict(HeraldError):
    status = 409
    title = "Resource conflict"


class ServiceUnavailable(HeraldError):
    """Storage or broker unreachable; the client should retry shortly."""

    status = 503
    title = "Service temporarily unavailable"


class InternalError(HeraldError):
    """An unexpected failure on the far side of the RPC boundary."""

    status = 500
    title = "Internal server error"
