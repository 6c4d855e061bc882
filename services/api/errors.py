"""HTTP errors that only the REST edge produces (routing, headers, media types).

Storage-side failures are ``herald.common.errors`` types; this module adds the
errors whose status and title vary per case (404 route, 405, 406, 415, the
header checks of the request pipeline). They never cross the RPC boundary,
so unlike the common errors they may take several constructor arguments.
This module must not import Tornado handlers or storage code.
"""

from __future__ import annotations

from typing import Any

from herald.common.errors import HeraldError


class APIError(HeraldError):
    """An error with a per-instance status, title, extra body keys and headers."""

    def __init__(self, status: int, title: str, description: str = "",
                 headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.title = title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().to_body())
        body.update(self.extra)
        return body


def route_not_found() -> APIError:
    return APIError(404, "404 Not Found")


def method_not_allowed(allowed: list[str]) -> APIError:
    return APIError(405, "405 Method Not Allowed",
                    headers={"Allow": ", ".join(allowed)})


def invalid_parameter(name: str, why: str) -> APIError:
    return APIError(400, "Invalid parameter", f'The "{name}" parameter is invalid. {why}')
