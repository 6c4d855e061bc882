"""The component schemas of the OpenAPI document (``herald.api.openapi``).

The shapes the REST API's requests and replies share (messages, claims,
subscriptions, errors, ...), referenced from the paths with ``ref(name)``.
Kept apart from the paths so that neither module outgrows the line limit;
pure data, like the document it belongs to: no configuration, no storage.
"""

from __future__ import annotations

from typing import Any

#: A subscription's webhook signing secret (docs/signed-webhooks.md).
_SECRET = {"type": ["string", "null"], "pattern": r"^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["title"],
              "properties": {"title": {"type": "string"}, "description": {"type": "string"}}},
    "Links": {"type": "array", "items": {
        "type": "object", "required": ["rel", "href"],
        "properties": {"rel": {"type": "string"}, "href": {"type": "string"}}}},
    "QueueMetadata": {"type": "object"},
    "Queue": {"type": "object", "required": ["name", "href"],
              "properties": {"name": {"type": "string"}, "href": {"type": "string"},
                             "metadata": {"type": "object"}}},
    "QueueList": {"type": "object", "required": ["queues", "links"],
                  "properties": {"queues": {"type": "array", "items": ref("Queue")},
                                 "links": ref("Links"), "count": {"type": "integer"}}},
    "TopicList": {"type": "object", "required": ["topics", "links"],
                  "properties": {"topics": {"type": "array", "items": ref("Queue")},
                                 "links": ref("Links")}},
    "TopicStats": {"type": "object", "required": ["messages"], "properties": {"messages": {
        "type": "object", "required": ["total"],
        "properties": {"free": {"type": "integer"}, "claimed": {"type": "integer"},
                       "total": {"type": "integer"}, "oldest": ref("Endpoint"),
                       "newest": ref("Endpoint")}}}},
    # The oldest/newest message of stats: Zaqar's stored message, href for id.
    "Endpoint": {"type": "object",
                 "required": ["href", "age", "ttl", "body", "claim_id", "claim_count",
                              "created"],
                 "properties": {"href": {"type": "string"}, "age": {"type": "integer"},
                                "ttl": {"type": "integer"}, "body": {},
                                "claim_id": {"type": ["string", "null"]},
                                "claim_count": {"type": "integer"},
                                "checksum": {"type": "string"}, "group": {"type": "string"},
                                "created": {"type": "string"}}},
    "QueueStats": {"type": "object", "required": ["messages"], "properties": {"messages": {
        "type": "object", "required": ["free", "claimed", "total"],
        "properties": {"free": {"type": "integer"}, "claimed": {"type": "integer"},
                       "total": {"type": "integer"}, "oldest": ref("Endpoint"),
                       "newest": ref("Endpoint")}}}},
    "Message": {"type": "object", "required": ["id", "href", "ttl", "age", "body"],
                "properties": {"id": {"type": "string"}, "href": {"type": "string"},
                               "ttl": {"type": "integer"}, "age": {"type": "integer"},
                               "body": {}, "checksum": {"type": "string"},
                               "claim_id": {"type": ["string", "null"]},
                               "claim_count": {"type": "integer"},
                               "group": {"type": "string"}}},
    # A popped message has no href (rest-v2.md, pop): it no longer exists.
    "PoppedMessage": {"type": "object", "required": ["id", "ttl", "age", "body"],
                      "properties": {"id": {"type": "string"}, "ttl": {"type": "integer"},
                                     "age": {"type": "integer"}, "body": {},
                                     "checksum": {"type": "string"},
                                     "claim_id": {"type": "null"},
                                     "claim_count": {"type": "integer"}}},
    "PoppedMessages": {"type": "object", "required": ["messages"], "properties": {
        "messages": {"type": "array", "items": ref("PoppedMessage")}}},
    "Messages": {"type": "object", "required": ["messages"],
                 "properties": {"messages": {"type": "array", "items": ref("Message")},
                                "links": ref("Links")}},
    "NewMessages": {"type": "object", "required": ["messages"], "properties": {
        "messages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["body"],
            "properties": {"body": {},
                           "ttl": {"type": "integer", "minimum": 60, "maximum": 1209600},
                           "delay": {"type": "integer", "minimum": 0, "maximum": 900},
                           "group": {"type": "string", "minLength": 1,
                                     "maxLength": 128}}}}}},
    "Resources": {"type": "object", "required": ["resources"],
                  "properties": {"resources": {"type": "array", "items": {"type": "string"}}}},
    "ClaimRequest": {"type": "object", "properties": {
        "ttl": {"type": ["integer", "null"], "minimum": 60, "maximum": 43200},
        "grace": {"type": ["integer", "null"], "minimum": 60, "maximum": 43200}}},
    "Claim": {"type": "object", "required": ["age", "ttl", "href", "messages"],
              "properties": {"age": {"type": "integer"}, "ttl": {"type": "integer"},
                             "href": {"type": "string"},
                             "messages": {"type": "array", "items": ref("Message")}}},
    "Subscription": {"type": "object",
                     "required": ["id", "source", "subscriber", "ttl", "age", "options",
                                  "confirmed"],
                     "properties": {"id": {"type": "string"}, "source": {"type": "string"},
                                    "subscriber": {"type": "string"},
                                    "ttl": {"type": "integer"}, "age": {"type": "integer"},
                                    "options": {"type": "object"},
                                    "confirmed": {"type": "boolean"}}},
    "SubscriptionList": {"type": "object", "required": ["subscriptions", "links"],
                         "properties": {"subscriptions": {"type": "array",
                                                          "items": ref("Subscription")},
                                        "links": ref("Links")}},
    "NewSubscription": {"type": "object", "properties": {
        "subscriber": {"type": "string", "pattern": "^(https?://|mailto:)[^ ]+$"},
        "ttl": {"type": "integer", "minimum": 60, "maximum": 2**31 - 1},
        "options": {"type": "object", "properties": {"signing_secret": _SECRET}}}},
    "JsonPatch": {"type": "array", "items": {
        "type": "object", "required": ["op", "path"],
        "properties": {"op": {"enum": ["add", "remove", "replace"]},
                       "path": {"type": "string"}, "value": {}}}},
    "Share": {"type": "object", "properties": {
        "paths": {"type": "array", "items": {"enum": ["messages", "subscriptions", "claims"]}},
        "methods": {"type": "array", "items": {"type": "string"}},
        "expires": {"type": "string", "format": "date-time"}}},
    "SignedURL": {"type": "object",
                  "required": ["project", "paths", "methods", "expires", "signature"],
                  "properties": {"project": {"type": "string"},
                                 "paths": {"type": "array", "items": {"type": "string"}},
                                 "methods": {"type": "array", "items": {"type": "string"}},
                                 "expires": {"type": "string"},
                                 "signature": {"type": "string"}}},
}
