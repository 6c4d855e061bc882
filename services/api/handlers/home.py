"""The versions document (``GET /``) and the JSON-home document (``GET /v2/``).

Static documents (rest-v2.md §1), key for key Zaqar 23's (see
docs/zaqar-differences.md); the admin resources appear only with
``admin_mode``. Subscription relations are listed as the contract says, even
though their routes are served by a later part of the API.
"""

from __future__ import annotations

from typing import Any

from herald.api.handlers.base import BaseHandler

_JSON = {"application/json": {}}


def _rel(template: str, allow: list[str], href_vars: dict[str, str] | None = None,
         accept_post: bool = False, plain_href: bool = False) -> dict[str, Any]:
    resource: dict[str, Any] = {"href" if plain_href else "href-template": template}
    if href_vars:
        resource["href-vars"] = href_vars
    hints: dict[str, Any] = {"allow": allow, "formats": dict(_JSON)}
    if accept_post:
        hints["accept-post"] = ["application/json"]
    resource["hints"] = hints
    return resource


_Q = {"queue_name": "param/queue_name"}

PUBLIC_RESOURCES: dict[str, dict[str, Any]] = {
    "rel/queues": _rel("/v2/queues{?marker,limit,detailed}", ["GET"],
                       {"marker": "param/marker", "limit": "param/queue_limit",
                        "detailed": "param/detailed"}),
    "rel/queue": _rel("/v2/queues/{queue_name}", ["GET", "PUT", "DELETE", "PATCH"], _Q),
    "rel/queue_stats": _rel("/v2/queues/{queue_name}/stats", ["GET"], _Q),
    "rel/queue_share": _rel("/v2/queues/{queue_name}/share", ["POST"], _Q, accept_post=True),
    "rel/queue_purge": _rel("/v2/queues/{queue_name}/purge", ["POST"], _Q, accept_post=True),
    "rel/messages": _rel(
        "/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}", ["GET"],
        {**_Q, "marker": "param/marker", "limit": "param/messages_limit",
         "echo": "param/echo", "include_claimed": "param/include_claimed"}),
    "rel/post_messages": _rel("/v2/queues/{queue_name}/messages", ["POST"], _Q,
                              accept_post=True),
    "rel/messages_delete": _rel("/v2/queues/{queue_name}/messages{?ids,pop}", ["DELETE"],
                                {**_Q, "ids": "param/ids", "pop": "param/pop"}),
    "rel/message_delete": _rel(
        "/v2/queues/{queue_name}/messages/{message_id}{?claim}", ["DELETE"],
        {**_Q, "message_id": "param/message_id", "claim": "param/claim_id"}),
    "rel/message_get": _rel("/v2/queues/{queue_name}/messages/{message_id}", ["GET"],
                            {**_Q, "message_id": "param/message_id"}),
    "rel/claim": _rel("/v2/queues/{queue_name}/claims/{claim_id}", ["GET"],
                      {**_Q, "claim_id": "param/claim_id"}),
    "rel/post_claim": _rel("/v2/queues/{queue_name}/claims{?limit}", ["POST"],
                           {**_Q, "limit": "param/claim_limit"}, accept_post=True),
    "rel/patch_claim": _rel("/v2/queues/{queue_name}/claims/{claim_id}", ["PATCH"],
                            {**_Q, "claim_id": "param/claim_id"}, accept_post=True),
    "rel/delete_claim": _rel("/v2/queues/{queue_name}/claims/{claim_id}", ["DELETE"],
                             {**_Q, "claim_id": "param/claim_id"}),
    "rel/subscriptions_get": _rel("/v2/queues/{queue_name}/subscriptions{?marker,limit}",
                                  ["GET"], {**_Q, "marker": "param/marker",
                                            "limit": "param/subscription_limit"}),
    # Zaqar lists a limit variable here too, though the template has none.
    "rel/subscriptions_post": _rel("/v2/queues/{queue_name}/subscriptions", ["POST"],
                                   {**_Q, "limit": "param/subscription_limit"},
                                   accept_post=True),
    "rel/subscription": _rel("/v2/queues/{queue_name}/subscriptions/{subscriptions_id}",
                             ["GET", "DELETE"],
                             {**_Q, "subscriptions_id": "param/subscriptions_id"}),
    "rel/subscription_patch": _rel(
        "/v2/queues/{queue_name}/subscriptions/{subscriptions_id}", ["PATCH"],
        {**_Q, "subscriptions_id": "param/subscriptions_id"}, accept_post=True),
    "rel/ping": _rel("/v2/ping", ["GET"]),  # a template without variables, as Zaqar's
}

ADMIN_RESOURCES: dict[str, dict[str, Any]] = {
    "rel/pools": _rel("/v2/pools{?detailed,limit,marker}", ["GET"],
                      {"detailed": "param/detailed", "limit": "param/pool_limit",
                       "marker": "param/marker"}),
    "rel/pool": _rel("/v2/pools/{pool_name}", ["GET", "PUT", "PATCH", "DELETE"],
                     {"pool_name": "param/pool_name"}),
    "rel/flavors": _rel("/v2/flavors{?detailed,limit,marker}", ["GET"],
                        {"detailed": "param/detailed", "limit": "param/flavor_limit",
                         "marker": "param/marker"}),
    "rel/flavor": _rel("/v2/flavors/{flavor_name}", ["GET", "PUT", "PATCH", "DELETE"],
                       {"flavor_name": "param/flavor_name"}),
    "rel/health": _rel("/v2/health", ["GET"], plain_href=True),
}

VERSIONS = {"versions": [{
    "id": "2",
    "status": "CURRENT",
    "updated": "2014-9-24T04:06:47Z",
    "media-types": [{"base": "application/json",
                     "type": "application/vnd.openstack.messaging-v2+json"}],
    "links": [{"href": "/v2/", "rel": "self"}],
}]}


class VersionsHandler(BaseHandler):
    """``GET /``: needs neither Client-ID nor project."""

    ALLOWED = ("GET",)
    UNDER_V2 = False

    def get(self) -> None:
        self.reply_json(VERSIONS, status=300)


class HomeHandler(BaseHandler):
    """``GET /v2/`` (and ``/v2``): the JSON-home document."""

    ALLOWED = ("GET",)

    def get(self) -> None:
        resources = dict(PUBLIC_RESOURCES)
        if self.conf.admin_mode:
            resources.update(ADMIN_RESOURCES)
        self.set_header("Cache-Control", "max-age=86400")
        self.reply_json({"resources": resources}, content_type="application/json-home")
