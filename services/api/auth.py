"""Step 1 and 2 of the REST request pipeline: authentication and pre-signed URLs.

``authenticate(conf, method, path, headers)`` decides who is asking
(rest-v2.md §0.2, docs/security.md):

* a request carrying a non-empty ``URL-Signature`` is checked as a
  pre-signed URL (§11) and nothing else (``signing.verify_request``: method
  signed, path one of the signed paths or below one, project named and
  signed, not expired). Any failure is the route's ``404`` (the spec hides
  whether the resource exists). Such a request never has roles, and its
  project is the signed one: a signature grants exactly its methods and
  paths in exactly its project.
* with ``[DEFAULT] auth_strategy = keystone``, every other request except
  the versions document ``/`` must carry exactly one token that
  keystonemiddleware accepts, and the token must be scoped to a project
  (401 otherwise, whatever else the request carries: no header a client
  controls replaces a token). The project and roles then come from the
  token, never from the client's ``X-Project-ID``/``X-Roles``. An empty
  ``URL-Signature`` is no signature: the request needs a token.
* without an auth strategy the client's headers are trusted (noauth): the
  development and embedded mode, never a multi-tenant deployment.

The health probes (``/healthz``, ``/readyz``) are not served by this
pipeline at all (``herald.common.health``). This module only decides
identity; header syntax checks, queue names and policy stay in
``handlers.base``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping

from oslo_config import cfg

from herald.api import errors as api_errors
from herald.common import keystone, signing
from herald.common.config import signed_url

#: The paths served without a token in keystone mode (docs/security.md).
PUBLIC_PATHS = frozenset({"/"})


@dataclasses.dataclass(frozen=True)
class Identity:
    """What authentication established; None fields defer to the headers."""

    #: The project the request acts in, from the token or the signature;
    #: None only in noauth mode, where the ``X-Project-ID`` header decides.
    project_id: str | None = None
    #: Roles; None means "the client's X-Roles header" (noauth).
    roles: tuple[str, ...] | None = None
    signed: bool = False


#: No auth strategy: the headers say who is asking.
NOAUTH = Identity()
#: Keystone mode, a path that needs no identity (the versions document).
ANONYMOUS = Identity(roles=())


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _unauthorized() -> api_errors.APIError:
    return api_errors.APIError(401, "Unauthorized", "This server could not verify that "
                               "you are authorized to access the document you requested.")


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (Tornado keeps repeated headers apart)."""
    get_list = getattr(headers, "get_list", None)
    if get_list is not None:
        return list(get_list(name))
    value = headers.get(name)
    return [] if value is None else [value]


def signed_request_valid(conf: cfg.ConfigOpts, method: str, path: str,
                         headers: Mapping[str, str]) -> bool:
    """Whether the ``URL-*`` headers sign this request (rest-v2.md §11)."""
    return signing.verify_request(
        signed_url.verifying_keys(conf), method=method, path=path,
        given_signature=headers.get("URL-Signature", ""),
        paths=_split(headers.get("URL-Paths", "")),
        methods=_split(headers.get("URL-Methods", "")),
        project=headers.get("X-Project-ID"), expires=headers.get("URL-Expires", ""))


async def authenticate(conf: cfg.ConfigOpts, method: str, path: str,
                       headers: Mapping[str, str]) -> Identity:
    """The caller's identity, or raise the pipeline's 401/404 (module docstring)."""
    if headers.get("URL-Signature"):
        if not signed_request_valid(conf, method, path, headers):
            raise api_errors.route_not_found()
        return Identity(project_id=headers["X-Project-ID"], roles=(), signed=True)
    if conf.auth_strategy != "keystone":
        return NOAUTH
    if path in PUBLIC_PATHS:
        return ANONYMOUS
    tokens = _values(headers, "X-Auth-Token")
    if len(tokens) != 1 or not tokens[0].strip():
        # None, an empty one, or several (which would leave the choice to
        # whichever layer reads the header first).
        raise _unauthorized()
    validator = keystone.validator(conf)
    loop = asyncio.get_running_loop()
    # keystonemiddleware is blocking (it calls Keystone over HTTP when the
    # token is not cached): keep it off the event loop.
    result = await loop.run_in_executor(None, validator.validate, dict(headers))
    if not result.ok or not result.project_id:
        # A valid but unscoped (or domain-scoped) token names no project: the
        # request would otherwise act in whatever project its header names.
        raise _unauthorized()
    return Identity(project_id=result.project_id, roles=result.roles)
