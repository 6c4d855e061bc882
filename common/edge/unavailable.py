"""How each edge says that storage is unavailable (503).

REST says the operation's own sentence, which ``StorageAPI`` puts in the
``ServiceUnavailable`` it raises (``herald.common.rpc.operations``); the
REST handlers reword it only where one operation serves another resource
(``BaseHandler.unavailable_as``). The websocket says the reference's
per-action summary in ``error`` (below), which is not always the
operation's sentence (``claim_create``: "Claim could not be created.", the
operation: "Messages could not be claimed."), and shows how the call failed
in ``exception``. Pure data; no I/O.
"""

from __future__ import annotations

#: The reference's websocket summary of a 503, by action.
WEBSOCKET_SUMMARIES: dict[str, str] = {
    "subscription_create": "Subscription could not be created.",
    "subscription_list": "Subscriptions could not be listed.",
    "subscription_get": "Subscription could not be retrieved.",
    "subscription_delete": "Subscription could not be deleted.",
    "queue_list": "Queues could not be listed.",
    "queue_create": "Queue could not be created.",
    "queue_get": "Queue metadata could not be retrieved.",
    "queue_delete": "Queue could not be deleted.",
    "queue_get_stats": "Queue stats could not be read.",
    "queue_purge": "Queue could not be purged.",
    "message_list": "Messages could not be listed.",
    "message_get": "Message could not be retrieved.",
    "message_get_many": "Messages could not be listed.",
    "message_post": "Messages could not be enqueued.",
    "message_delete": "Message could not be deleted.",
    "message_delete_many": "Messages could not be deleted.",
    "message_release": "Message could not be released.",
    "claim_create": "Claim could not be created.",
    "claim_get": "Claim could not be queried.",
    "claim_update": "Claim could not be updated.",
    "claim_delete": "Claim could not be deleted.",
}

#: For an action without a summary of its own.
GENERIC = "Service temporarily unavailable."


def websocket_summary(action: str) -> str:
    return WEBSOCKET_SUMMARIES.get(action, GENERIC)
