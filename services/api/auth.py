"""Step 1 and 2 of the REST request pipeline: authentication and pre-signed URLs.

``authenticate(handler)`` decides who is asking (rest-v2.md §0.2):

* a request carrying ``URL-Signature`` (non-empty) is checked as a
  pre-signed URL (§11) and nothing else: method in ``URL-Methods``, a signed
  path found in the request path by regular-expression search, not expired,
  signature recomputed with ``[signed_url] secret_key``. Any failure is the
  route's ``404`` (the spec hides whether the resource exists). Such a
  request never has roles: a signature grants exactly its methods and paths.
* with ``[DEFAULT] auth_strategy = keystone``, every other request except
  ``/`` and ``EXTRA-SPEC`` ones must carry a token keystonemiddleware accepts
  (401 otherwise); the project and roles then come from the token, never from
  the client's ``X-Project-ID``/``X-Roles``.
* without an auth strategy the client's headers are trusted (noauth).

This module only decides identity; header syntax checks, queue names and
policy stay in ``handlers.base``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Mapping

from oslo_config import cfg

from herald.api import errors as api_errors
from herald.common import keystone, signing


@dataclasses.dataclass(frozen=True)
class Identity:
    """What authentication established; None fields defer to the headers."""

    #: The project to use instead of the ``X-Project-ID`` header (Keystone).
    project_id: str | None = None
    #: Roles; None means "the client's X-Roles header" (noauth).
    roles: tuple[str, ...] | None = None
    signed: bool = False


NOAUTH = Identity()


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def signed_request_valid(conf: cfg.ConfigOpts, method: str, path: str,
                         headers: Mapping[str, str]) -> bool:
    """Whether the ``URL-*`` headers sign this request (rest-v2.md §11)."""
    key = conf.signed_url.secret_key
    if not key:
        return False  # nothing can be verified without the key
    methods = _split(headers.get("URL-Methods", ""))
    paths = _split(headers.get("URL-Paths", ""))
    if method not in methods:
        return False
    # Regular-expression search, as the reference: a signed
    # ".../messages" also grants ".../messages/<id>". An invalid pattern
    # grants nothing.
    matched = False
    for signed_path in paths:
        try:
            if re.search(signed_path, path):
                matched = True
                break
        except re.error:
            continue
    if not matched:
        return False
    # The project signed is the X-Project-ID sent (None when absent, as the
    # reference formats it).
    project = headers.get("X-Project-ID")
    return signing.verify(key, headers.get("URL-Signature", ""), paths, methods, project,
                          headers.get("URL-Expires", ""))


async def authenticate(conf: cfg.ConfigOpts, method: str, path: str,
                       headers: Mapping[str, str]) -> Identity:
    """The caller's identity, or raise the pipeline's 401/404 (module docstring)."""
    if headers.get("URL-Signature"):
        if not signed_request_valid(conf, method, path, headers):
            raise api_errors.route_not_found()
        return Identity(roles=(), signed=True)
    if conf.auth_strategy != "keystone" or path == "/" or "EXTRA-SPEC" in headers:
        return NOAUTH
    validator = keystone.validator(conf)
    loop = asyncio.get_running_loop()
    # keystonemiddleware is blocking (it calls Keystone over HTTP when the
    # token is not cached): keep it off the event loop.
    result = await loop.run_in_executor(None, validator.validate, dict(headers))
    if not result.ok:
        raise api_errors.APIError(401, "Unauthorized", "This server could not verify that "
                                  "you are authorized to access the document you requested.")
    return Identity(project_id=result.project_id, roles=result.roles)
