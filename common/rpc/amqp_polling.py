"""How soon oslo.messaging's AMQP consumers wake up after a message.

Each consumer thread of oslo.messaging's AMQP driver (an RPC server's
listener, a caller's reply waiter) waits for the next message with a
timeout. After every message that timeout starts again at
``ACK_REQUEUE_EVERY_SECONDS_MIN`` (1 ms) and doubles up to 5 s. The short
first timeouts exist for notification listeners: their acknowledgements and
requeues are queued by other threads and only run when the consumer thread
comes round. An RPC request is acknowledged in the consumer callback, and a
reply too, so in a process that only speaks RPC, as every Herald service
does, those wake-ups find nothing to do. Each still costs a pass through
kombu's ensure/autoretry wrappers, a socket timeout and an exception: four
to six of them per message when messages come every 10-30 ms, on every
consumer of every process (docs/performance.md, eighth round).

``apply()`` makes the first timeout one second. A message still wakes its
consumer at once (the socket becomes readable), and an idle consumer checks
the connection's heartbeats as often as before (every 2.5 s with Herald's
heartbeat threshold). The price: a consumer told to stop notices at its
next wake-up, so stopping a busy one can take up to that second, as
stopping an idle one already took up to 2.5 s.

Must not be used in a process that runs oslo.messaging notification
listeners: their acknowledgements would wait for the next message or for
that second. The constant is the driver's own (a private module): if a
release renames it, ``apply()`` changes nothing and says so in the log.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)

#: The first wait of a consumer thread after a message, in seconds.
FIRST_WAIT_AFTER_A_MESSAGE = 1.0


def apply() -> None:
    """Set oslo.messaging's AMQP consumers' first wait after a message."""
    from oslo_messaging._drivers import amqpdriver

    if not hasattr(amqpdriver, "ACK_REQUEUE_EVERY_SECONDS_MIN"):
        LOG.warning("oslo.messaging has no ACK_REQUEUE_EVERY_SECONDS_MIN: its AMQP "
                    "consumers keep their own polling")
        return
    amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN = FIRST_WAIT_AFTER_A_MESSAGE
