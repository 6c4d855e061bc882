"""Whether RabbitMQ confirms each RPC publish (``[rpc] publisher_confirms``).

oslo.messaging's RabbitMQ driver opens every connection in confirm mode
(``confirm_publish`` in kombu's transport options; no option of its own
turns it off): every publish -- a coalesced batch sent to the storage
workers, every reply sent back -- waits for the broker's ``basic.ack``,
one more round trip through the broker and one more wake-up of the
publishing thread, which must win the interpreter lock from the event loop
or the worker's threads to read it. Without it, in runs alternated with
it, RabbitMQ's CPU per websocket post fell by a fifth and websocket
posts, single posts and push latency improved (docs/performance.md,
eleventh round).

Herald's RPC does not need the confirm to be safe. A client is told a
message is stored only once a worker has committed it and its reply has
come back; a call whose request or reply the broker loses is answered 503
when ``[rpc] call_timeout`` runs out, with or without a confirm. What a
confirm adds: a publish on a connection that died, or one the broker
rejects (larger than its ``max_message_size``), fails at once instead of at
that timeout. tests/faults/test_broker.py passes either way. Casts (pushes
to websocket gateways, long-poll wake-ups) are fire-and-forget already:
a confirm told their sender nothing it acted on.

``apply(False)`` makes kombu's py-amqp transport open its connections
without confirm mode, for every oslo.messaging transport the process
creates afterwards (py-amqp is used by nothing else in Herald's services);
``apply(True)`` restores kombu's own. Replies are sent without the
``mandatory`` flag (``herald.common.config``): without a confirm to wait for,
a reply the broker returned -- its caller gone -- would surface as an
error in whichever thread next read that connection.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import pyamqp

#: kombu's py-amqp connection class, as kombu ships it.
_KOMBU_CONNECTION = pyamqp.Transport.Connection


class _UnconfirmedConnection(_KOMBU_CONNECTION):  # type: ignore[misc, valid-type]
    """A py-amqp connection whose channels publish without confirm mode."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["confirm_publish"] = False
        super().__init__(*args, **kwargs)


def apply(enabled: bool) -> None:
    """Open later RabbitMQ connections with (True) or without publisher confirms."""
    pyamqp.Transport.Connection = _KOMBU_CONNECTION if enabled else _UnconfirmedConnection
