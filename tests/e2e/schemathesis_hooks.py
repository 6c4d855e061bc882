"""Schemathesis hooks for ``test_openapi_schemathesis.py`` (loaded via SCHEMATHESIS_HOOKS).

Herald's queue PATCH takes a JSON body under Zaqar's own media type, and the
home document is JSON under ``application/json-home``; schemathesis knows
neither, so it is told they are JSON. Nothing else is customised: the run
must see the API as any client would.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/openstack-messaging-v2.0-json-patch")
def _json_patch(ctx: Any, value: Any) -> bytes:
    return json.dumps(value).encode()


@schemathesis.deserializer("application/json-home")
def _json_home(ctx: Any, response: Any) -> Any:
    return json.loads(response.content)
