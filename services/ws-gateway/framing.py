"""Server-to-client websocket frames built once and written to many connections.

A broadcast sends the same notifications to every subscribed connection of
a gateway (``herald.ws_gateway.push``). Tornado's ``write_message`` frames
each message again for each connection and wraps every write in a task;
here a broadcast's frames are built once per frame kind -- the header of
RFC 6455 §5.2 and the encoded payload, as one ``bytes`` -- and the same
bytes go to every connection (``Connection.send_framed``).

That is only right because the frames are the same on every connection:
the gateway negotiates no ``permessage-deflate`` extension (its handler
keeps Tornado's ``get_compression_options``, which returns None), and a
server never masks its frames (RFC 6455 §5.1). Were compression ever
enabled, broadcasts would have to go back to ``write_message``.

This module only builds bytes: it knows no connections, sockets or codecs.
"""

from __future__ import annotations

import struct

#: RFC 6455 §5.2 opcodes.
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
_FIN = 0x80


def frame(payload: bytes, binary: bool) -> bytes:
    """One final, unmasked data frame carrying ``payload``."""
    first = _FIN | (OPCODE_BINARY if binary else OPCODE_TEXT)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def frames(encoded: list[str | bytes], binary: bool) -> bytes:
    """Consecutive frames of ``encoded`` (text is UTF-8 encoded), as one
    ``bytes`` a connection receives as that many messages."""
    return b"".join(frame(item.encode() if isinstance(item, str) else item, binary)
                    for item in encoded)
