"""The OpenAPI 3.1 document of the REST API, built in code, served at ``GET /openapi.json``.

Built here rather than kept as a YAML file so that it ships inside the package and shares
its limits with the code (queue name pattern, page sizes). ``tests/unit/test_openapi.py``
holds it against the route table of ``herald.api.app``: a route added there without a path
here (or the other way round) fails that test with the route's name.

The document describes what Herald answers (rest-v2.md), not a wish list: every
operation lists its success statuses, the client errors it can give and 503 (storage
unreachable), with ``default`` covering the pipeline's errors (400/401/403/404/406 from
the common checks, rest-v2.md §0.2). Bodies are loose where Zaqar lets them be anything
(message bodies, metadata). This module must not read configuration or call storage.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import tornado.web

from herald.api import openapi_redrive
from herald.api.handlers.base import BaseHandler
from herald.api.openapi_schemas import SCHEMAS as _SCHEMAS
from herald.api.openapi_schemas import ref as _ref

OPENAPI_PATH = "/openapi.json"

_QUEUE_NAME = {"type": "string", "pattern": r"^[a-zA-Z0-9_.-]{1,64}$"}
_ID = {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,64}$"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _empty(description: str) -> dict[str, Any]:
    return {"description": description}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


_HEADERS = [
    {"name": "Client-ID", "in": "header", "required": True,
     "description": "The client's UUID (32 hex digits, dashes optional).",
     "schema": {"type": "string", "format": "uuid"}},
    {"name": "X-Project-ID", "in": "header", "required": True,
     "description": "The project (tenant); overwritten by Keystone when it is on.",
     "schema": {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,256}$"}},
]
_QUEUE = _path_param("queue_name", _QUEUE_NAME)
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 20})
_MARKER = _query("marker", {"type": "string"})
_BOOL = {"type": "boolean"}


def _op(summary: str, responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, body_type: str = "application/json",
        v2: bool = True, body_required: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [*(_HEADERS if v2 else []), *(params or [])],
        "responses": {**responses,
                      "503": responses.get("503", _error("Storage unreachable; retry later.")),
                      "default": _error("A client error of the request pipeline.")},
    }
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {body_type: {"schema": body}}}
    return operation



def _paths() -> dict[str, Any]:
    q = "/v2/queues/{queue_name}"
    mid = _path_param("message_id", _ID)
    cid = _path_param("claim_id", _ID)
    sid = _path_param("subscription_id", _ID)
    return {
        "/": {"get": _op("Versions document", {"300": _json({"type": "object"}, "Versions")},
                         v2=False)},
        OPENAPI_PATH: {"get": _op("This document", {"200": _json({"type": "object"},
                                                                 "OpenAPI 3.1")}, v2=False)},
        "/v2/": {"get": _op("JSON-home document", {
            "200": {"description": "JSON home",
                    "content": {"application/json-home": {"schema": {"type": "object"}}}}})},
        "/v2/ping": {
            "get": _op("Storage reachable?", {"204": _empty("Reachable"),
                                              "503": _empty("Not reachable")}),
            "head": _op("Always 204", {"204": _empty("Up")}),
        },
        "/v2/health": {"get": _op("Health report (admin_mode, admin role)",
                                  {"200": _json({"type": "object"}, "Report")})},
        "/v2/queues": {"get": _op("List queues", {"200": _json(_ref("QueueList"), "Page")}, [
            _MARKER, _LIMIT, _query("detailed", _BOOL), _query("name", {"type": "string"}),
            _query("with_count", _BOOL)])},
        q: {
            "put": _op("Create a queue", {"201": _empty("Created"),
                                          "204": _empty("Already existed")},
                       [_QUEUE], body=_ref("QueueMetadata")),
            "get": _op("Queue metadata", {"200": _json(_ref("QueueMetadata"), "Metadata")},
                       [_QUEUE]),
            "patch": _op("Update metadata (JSON patch)",
                         {"200": _json(_ref("QueueMetadata"), "Metadata after the patch"),
                          "404": _error("No such queue"), "409": _error("Patch conflict"),
                          "415": _error("Wrong Content-Type")},
                         [_QUEUE], body=_ref("JsonPatch"), body_required=True,
                         body_type="application/openstack-messaging-v2.0-json-patch"),
            "head": _op("Does the queue exist? (python-zaqarclient's Queue.exists())",
                        {"204": _empty("Exists"), "404": _empty("No such queue")}, [_QUEUE]),
            "delete": _op("Delete a queue", {"204": _empty("Deleted")}, [_QUEUE]),
        },
        f"{q}/stats": {"get": _op("Queue statistics",
                                  {"200": _json(_ref("QueueStats"), "Stats")}, [_QUEUE])},
        f"{q}/purge": {"post": _op("Purge messages and/or subscriptions",
                                   {"204": _empty("Purged")}, [_QUEUE], body={
                                       "type": "object", "required": ["resource_types"],
                                       "properties": {"resource_types": {
                                           "type": "array", "items": {
                                               "enum": ["messages", "subscriptions"]}}}})},
        f"{q}/share": {"post": _op("Create a pre-signed URL",
                                   {"200": _json(_ref("SignedURL"), "Signed URL")},
                                   [_QUEUE], body=_ref("Share"), body_required=True)},
        f"{q}/messages": {
            "post": _op("Post messages", {"201": _json(_ref("Resources"), "Posted")},
                        [_QUEUE], body=_ref("NewMessages"), body_required=True),
            "get": _op("List messages, or get several by id",
                       {"200": _json(_ref("Messages"), "Messages"),
                        "404": _error("None of the ids exist")},
                       [_QUEUE, _MARKER, _LIMIT, _query("echo", _BOOL),
                        _query("include_claimed", _BOOL), _query("include_delayed", _BOOL),
                        _query("ids", {"type": "string"}, "Comma-separated message ids")]),
            "delete": _op("Delete several messages by id, or pop",
                          {"204": _empty("Deleted"),
                           "200": _json(_ref("PoppedMessages"), "Popped messages")},
                          [_QUEUE, _query("ids", {"type": "string"}),
                           _query("claim_ids", {"type": "string"}),
                           _query("pop", {"type": "integer", "minimum": 1, "maximum": 20})]),
        },
        f"{q}/messages/{{message_id}}": {
            "get": _op("Get a message", {"200": _json(_ref("Message"), "Message"),
                                         "404": _error("No such message")}, [_QUEUE, mid]),
            "delete": _op("Delete a message", {"204": _empty("Deleted"),
                                               "403": _error("Claimed by someone else")},
                          [_QUEUE, mid, _query("claim_id", _ID)]),
        },
        f"{q}/claims": {"post": _op(
            "Claim messages", {"201": _json(_ref("Messages"), "Claimed"),
                               "204": _empty("Nothing to claim")},
            [_QUEUE, _LIMIT], body=_ref("ClaimRequest"))},
        f"{q}/claims/{{claim_id}}": {
            "get": _op("Get a claim", {"200": _json(_ref("Claim"), "Claim"),
                                       "404": _error("No such live claim")}, [_QUEUE, cid]),
            "patch": _op("Renew a claim", {"204": _empty("Renewed"),
                                           "404": _error("No such live claim")},
                         [_QUEUE, cid], body=_ref("ClaimRequest"), body_required=True),
            "delete": _op("Release a claim", {"204": _empty("Released")}, [_QUEUE, cid]),
        },
        f"{q}/subscriptions": {
            "get": _op("List subscriptions",
                       {"200": _json(_ref("SubscriptionList"), "Page")},
                       [_QUEUE, _MARKER, _LIMIT]),
            "post": _op("Subscribe", {"201": _json({"type": "object", "required": [
                "subscription_id"], "properties": {"subscription_id": {"type": "string"}}},
                "Created (or the unconfirmed duplicate)"),
                "409": _error("Confirmed duplicate")},
                [_QUEUE], body=_ref("NewSubscription")),
        },
        f"{q}/subscriptions/{{subscription_id}}": {
            "get": _op("Get a subscription",
                       {"200": _json(_ref("Subscription"), "Subscription"),
                        "404": _error("No such subscription")}, [_QUEUE, sid]),
            "patch": _op("Update a subscription",
                         {"204": _empty("Updated"), "404": _error("No such subscription"),
                          "409": _error("Subscriber collides")},
                         [_QUEUE, sid], body=_ref("NewSubscription"), body_required=True),
            "delete": _op("Delete a subscription", {"204": _empty("Deleted")},
                          [_QUEUE, sid]),
        },
        f"{q}/subscriptions/{{subscription_id}}/confirm": {
            "put": _op("Confirm or unconfirm", {"204": _empty("Done"),
                                                "404": _error("No such subscription")},
                       [_QUEUE, sid], body={"type": "object", "required": ["confirmed"],
                                            "properties": {"confirmed": _BOOL}},
                       body_required=True)},
    }


# Topics (rest-v2.md §10) mirror queues; these are the queue paths they have.
_TOPIC_SUFFIXES = ("", "/stats", "/purge", "/messages", "/messages/{message_id}",
                   "/subscriptions", "/subscriptions/{subscription_id}",
                   "/subscriptions/{subscription_id}/confirm")


def _topic_paths(paths: dict[str, Any]) -> dict[str, Any]:
    topics: dict[str, Any] = {"/v2/topics": {"get": _op(
        "List topics", {"200": _json(_ref("TopicList"), "Page")},
        [_MARKER, _LIMIT, _query("detailed", _BOOL), _query("name", {"type": "string"})])}}
    for suffix in _TOPIC_SUFFIXES:
        item = paths["/v2/queues/{queue_name}" + suffix]
        topics["/v2/topics/{queue_name}" + suffix] = {
            method: {**operation, "summary": operation["summary"].replace("queue", "topic")}
            for method, operation in item.items()}
    topics["/v2/topics/{queue_name}/stats"] = {"get": _op(
        "Topic statistics", {"200": _json(_ref("TopicStats"), "Stats")}, [_QUEUE])}
    return topics


def _operator_paths() -> dict[str, Any]:
    """Pools and flavors (rest-v2.md §7-8): admin_mode and pooling only, else 404."""
    paths: dict[str, Any] = {}
    for kind, key in (("pool", "pool_name"), ("flavor", "flavor_name")):
        name = _path_param(key, {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,64}$"})
        paths[f"/v2/{kind}s"] = {"get": _op(
            f"List {kind}s", {"200": _json({"type": "object", "required": [f"{kind}s"]},
                                           "Page")},
            [_MARKER, _LIMIT, _query("detailed", _BOOL)])}
        paths[f"/v2/{kind}s/{{{key}}}"] = {
            "get": _op(f"Get a {kind}", {"200": _json({"type": "object"}, kind),
                                         "404": _error(f"No such {kind}")},
                       [name, _query("detailed", _BOOL)]),
            "put": _op(f"Create a {kind}", {"201": _empty("Created")}, [name],
                       body={"type": "object"}, body_required=True),
            "patch": _op(f"Update a {kind}", {"200": _json({"type": "object"}, kind),
                                              "404": _error(f"No such {kind}")},
                         [name], body={"type": "object"}, body_required=True),
            "delete": _op(f"Delete a {kind}", {"204": _empty("Deleted")}, [name]),
        }
    return paths


def _extension_paths() -> dict[str, Any]:
    """Herald's own endpoints: probes, delivery history (docs/api-extensions.md),
    message release (docs/release.md)."""
    probe = {"type": "object", "properties": {"ready": _BOOL, "detail": {"type": "string"}}}
    probe_op = _op("Probe", {"200": _json(probe, "Up / ready"),
                             "503": _json(probe, "Not ready")}, v2=False)
    q = "/v2/queues/{queue_name}"
    return {
        "/healthz": {"get": probe_op, "head": probe_op},
        "/readyz": {"get": probe_op, "head": probe_op},
        f"{q}/messages/{{message_id}}/deliveries": {"get": _op(
            "Delivery history of a message",
            {"200": _json({"type": "object"}, "Claims and push attempts"),
             "404": _error("Nothing known about the message")},
            [_QUEUE, _path_param("message_id", _ID)])},
        f"{q}/messages/{{message_id}}/release": {"post": _op(
            "Release a claimed message, claimable again after a delay",
            {"204": _empty("Released"), "403": _error("Held by another live claim"),
             "404": _error("No such message, or the claim is unknown or expired")},
            [_QUEUE, _path_param("message_id", _ID), {**_query("claim_id", _ID), "required": True}],
            body={"type": "object", "properties": {
                "delay": {"type": "integer", "minimum": 0, "maximum": 900}}})},
        f"{q}/subscriptions/{{subscription_id}}/test": {"post": _op(
            "Send one test notification now",
            {"200": _json({"type": "object"}, "The subscriber's answer"),
             "404": _error("No such subscription")},
            [_QUEUE, _path_param("subscription_id", _ID)])},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; callers must not mutate it)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Herald REST API", "version": "2",
                 "description": "Zaqar v2 compatible queuing and notification service."},
        "paths": {**_paths(), **_topic_paths(_paths()), **_operator_paths(),
                  **_extension_paths(), **openapi_redrive.paths()},
        "components": {"schemas": _SCHEMAS},
    }


class OpenAPIHandler(BaseHandler):
    """``GET /openapi.json``: no Client-ID or project needed, like ``/``."""

    ALLOWED = ("GET",)
    UNDER_V2 = False

    def get(self) -> None:
        self.finish(json.dumps(document()))


def route() -> tuple[str, type[tornado.web.RequestHandler]]:
    return OPENAPI_PATH, OpenAPIHandler
