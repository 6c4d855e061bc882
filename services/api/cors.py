"""CORS for the REST API: which browser origins may read its replies.

``[api] cors_allowed_origins`` lists the web page origins allowed to call the
API from a browser (``*`` for any). ``cors_headers`` computes the headers one
response gets; the handlers' pipeline (``handlers.base``) adds them to every
response, errors included, and answers preflight ``OPTIONS`` requests.

Empty list (the default): no CORS header at all, exactly as before, so the
browser withholds every cross-origin reply from the page. Nothing here
rejects a request: CORS only tells the browser what it may show the page; a
request from a non-listed origin is served as usual (a browser that follows
CORS never sends it unless it is "simple", and then hides the reply).

Whether an origin is listed is ``herald.common.edge.origins`` (shared with
the websocket handshake). No cookies or credentials are involved (identity comes in headers), so
``Access-Control-Allow-Credentials`` is never sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from herald.common.edge.origins import listed

# Headers a browser script may send. Client-ID and the project header are
# what every /v2 request needs; the URL-* ones carry pre-signed URLs
# (rest-v2.md §11); X-Auth-Token is Keystone's.
ALLOW_HEADERS = (
    "Accept",
    "Client-ID",
    "Content-Type",
    "X-Auth-Token",
    "X-Project-ID",
    "X-Openstack-Request-Id",
    "URL-Signature",
    "URL-Expires",
    "URL-Methods",
    "URL-Paths",
)

# Response headers a script may read besides the CORS-safelisted ones:
# Location of a created queue or message, and the request id to quote when
# reporting a problem.
EXPOSE_HEADERS = ("Location", "Content-Location", "X-Openstack-Request-Id")

# How long a browser may cache a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = 600


def cors_headers(origin: str | None, allowed: Sequence[str], preflight: bool,
                 methods: Sequence[str]) -> dict[str, str]:
    """The CORS headers of one response (empty when CORS does not apply).

    ``origin`` is the request's Origin header, ``allowed`` the configured
    origins, ``preflight`` whether the request is a CORS preflight (OPTIONS
    with ``Access-Control-Request-Method``), ``methods`` the route's methods.
    """
    if not origin or not allowed or not listed(origin, allowed):
        return {}
    headers = {
        # The origin is echoed even for "*": harmless without credentials,
        # and the answer has one shape whatever the configuration. Since it
        # depends on the Origin header, caches must key on it (Vary).
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": ", ".join(EXPOSE_HEADERS),
        "Vary": "Origin",
    }
    if preflight:
        headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        headers["Access-Control-Allow-Headers"] = ", ".join(ALLOW_HEADERS)
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return headers
