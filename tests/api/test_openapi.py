"""The OpenAPI document (``herald.api.openapi``) against the route table and the wire.

- Every route of ``herald.api.app.make_app`` is a path of the document with
  exactly the route's methods, and every documented path is routed. The
  failure names the route, so whoever adds an endpoint knows what to add to
  ``services/api/openapi.py``.
- ``GET /openapi.json`` serves it without Client-ID or project.
- A few real replies validate against the document's schemas (the bounded
  schemathesis run in ``tests/contract`` does this exhaustively).
"""

from __future__ import annotations

import re

import jsonschema
import requests
import tornado.web
from oslo_config import cfg

from herald.api import openapi
from herald.api.app import make_app
from herald.api.handlers.base import BaseHandler
from herald.common import config
from tests.api.conftest import Client, Stack

_HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete")


def _template(pattern: str) -> str:
    """A Tornado route regex as an OpenAPI path template."""
    path = pattern.rstrip("$")
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)
    return path.replace("/?", "/")  # "/v2/?": the home document lives at /v2/


def _methods(handler: type[tornado.web.RequestHandler]) -> set[str]:
    if issubclass(handler, BaseHandler):
        return {m.lower() for m in handler.ALLOWED}
    return {m for m in _HTTP_METHODS
            if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)}


def routed() -> dict[str, tuple[str, set[str]]]:
    """path template -> (handler name, methods) of the application's routes."""
    app = make_app(config.load([], conf=cfg.ConfigOpts()), storage=None)  # type: ignore[arg-type]
    routes = {}
    for rule in app.wildcard_router.rules:
        handler = rule.target
        routes[_template(rule.matcher.regex.pattern)] = (handler.__name__, _methods(handler))
    return routes


def test_every_route_is_documented_and_every_documented_path_is_routed() -> None:
    documented = {path: {m for m in item if m in _HTTP_METHODS}
                  for path, item in openapi.document()["paths"].items()}
    problems = []
    for path, (handler, methods) in sorted(routed().items()):
        if path not in documented:
            problems.append(f"route {path} ({handler}, {sorted(methods)}) is missing from "
                            f"the OpenAPI document: add it to _paths() in "
                            f"services/api/openapi.py")
        elif documented[path] != methods:
            problems.append(f"route {path} ({handler}) implements {sorted(methods)} but the "
                            f"OpenAPI document has {sorted(documented[path])}")
    for path in sorted(set(documented) - set(routed())):
        problems.append(f"OpenAPI path {path} is documented but not routed in "
                        f"services/api/app.py")
    assert not problems, "\n".join(problems)


def test_the_document_is_openapi_3_1_with_resolvable_references() -> None:
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    text = repr(document)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in document["components"]["schemas"], name
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_served_without_client_id(stack: Stack) -> None:
    response = requests.get(f"{stack.base_url}{openapi.OPENAPI_PATH}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == openapi.document()


def _validate(instance: object, name: str) -> None:
    # The document itself is the root, so its #/components/... references resolve.
    root = {"$ref": f"#/components/schemas/{name}",
            "components": openapi.document()["components"]}
    jsonschema.Draft202012Validator(root).validate(instance)


def test_real_replies_match_their_schemas(api: Client) -> None:
    assert api.put("/v2/queues/doc").status_code == 201
    assert len(api.post_messages("doc", 3)) == 3
    _validate(api.get("/v2/queues?detailed=true").json(), "QueueList")
    _validate(api.get("/v2/queues/doc/stats").json(), "QueueStats")
    _validate(api.get("/v2/queues/doc/messages?echo=true").json(), "Messages")
    popped = api.delete("/v2/queues/doc/messages?pop=1")
    assert popped.status_code == 200 and len(popped.json()["messages"]) == 1
    _validate(popped.json(), "PoppedMessages")
    for prefix in ("/v2/queues", "/v2/topics"):  # the document says so too
        pop = openapi.document()["paths"][f"{prefix}/{{queue_name}}/messages"]["delete"]
        assert pop["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/PoppedMessages"}
    claim_id, _ = api.claim("doc", limit=2)
    _validate(api.get(f"/v2/queues/doc/claims/{claim_id}").json(), "Claim")
    _validate(api.get("/v2/queues/doc/messages?include_claimed=true&echo=true").json(),
              "Messages")
    created = api.post("/v2/queues/doc/subscriptions",
                       json_body={"subscriber": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201
    _validate(api.get("/v2/queues/doc/subscriptions").json(), "SubscriptionList")
