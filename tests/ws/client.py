"""A minimal synchronous websocket client for the gateway tests.

Sends the request envelope as a JSON text frame or a msgpack binary frame
and returns the decoded reply together with the frame kind it came in, so
tests can check that a reply uses its request's frame kind.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgpack
import websocket

_MISSING = object()


class WSClient:
    def __init__(self, url: str, project: str, binary: bool = False,
                 client_id: str | None = None, timeout: float = 15.0) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.binary = binary
        self.headers = {"Client-ID": client_id or str(uuid.uuid4()), "X-Project-ID": project}

    def send(self, action: Any, body: Any = _MISSING, headers: Any = _MISSING,
             binary: bool | None = None) -> None:
        payload: dict[str, Any] = {"action": action}
        payload["headers"] = self.headers if headers is _MISSING else headers
        if headers is None:
            del payload["headers"]
        if body is not _MISSING:
            payload["body"] = body
        self.send_raw(payload, self.binary if binary is None else binary)

    def send_raw(self, payload: Any, binary: bool) -> None:
        if binary:
            self.ws.send_binary(msgpack.packb(payload, use_bin_type=True))
        else:
            self.ws.send(json.dumps(payload))

    def recv(self) -> tuple[dict[str, Any], bool]:
        """(reply, was_binary)."""
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return msgpack.unpackb(data, raw=False), True
        return json.loads(data.decode()), False

    def call(self, action: Any, body: Any = _MISSING, headers: Any = _MISSING,
             binary: bool | None = None) -> dict[str, Any]:
        """Send one request and return its reply, checking the frame kind."""
        self.send(action, body, headers, binary)
        reply, was_binary = self.recv()
        assert was_binary == (self.binary if binary is None else binary)
        return reply

    def status_body(self, action: str, body: Any = _MISSING, **kwargs: Any) -> tuple[int, Any]:
        reply = self.call(action, body, **kwargs)
        return reply["headers"]["status"], reply["body"]

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> WSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
