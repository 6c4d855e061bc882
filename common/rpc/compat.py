"""Every change Herald makes to oslo.messaging's and kombu's behaviour, in one place.

What this module is for: Herald relies on three behaviours its messaging
libraries do not offer as options. Each is changed here, and only here, by
one function naming the upstream package, the version range it was written
against and what it touches. ``tests/unit/test_compat.py`` fails when the
installed upstream no longer matches what a patch assumes (the patched
name, its signature or the source of the code that reads it), so an upgrade
cannot silently turn a patch into a no-op or into a bug.

What it must not do: hold Herald logic (callers, servers, retries live in
``herald.common.rpc``), or be patched from anywhere else: a new workaround
for oslo.messaging or kombu goes here, with its version range and its test.

The patches, applied once per process by ``apply(conf)`` at start-up (the
CLI does it before any transport exists), are:

1. ``messaging_defaults()`` -- oslo.messaging's RabbitMQ driver option
   defaults (``impl_rabbit.rabbit_opts``): a 10 s heartbeat threshold,
   replies without the ``mandatory`` flag and a consumer prefetch of
   ``RABBIT_PREFETCH``. Also run by
   ``herald.common.config.load`` before the configuration is parsed.
2. ``amqp_first_wait()`` -- the AMQP driver's consumers' first wait after a
   message (``amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN``).
3. ``publisher_confirms(enabled)`` -- whether kombu's py-amqp transport opens
   its connections in confirm mode (``[rpc] publisher_confirms``).
4. ``leave_late_deliveries_unacked(server)`` -- per RPC server, once started
   (``herald.common.rpc.server``): requests delivered after stop() are left
   to another worker instead of being acknowledged and dropped.

Thread-safety: the patches rebind module attributes and option defaults;
call them at start-up, before any thread uses a transport. Each is
idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import pyamqp
from oslo_config import cfg

LOG = logging.getLogger(__name__)

#: Upstream versions every patch here was written and tested against
#: (``pip show``); tests/unit/test_compat.py checks the installed ones.
OSLO_MESSAGING_VERSIONS = (">=18.3", "<19")
KOMBU_VERSIONS = (">=5.7", "<6")


# -- 1. oslo.messaging RabbitMQ driver defaults ---------------------------------
# Targets oslo.messaging 18.3.x: ``oslo_messaging._drivers.impl_rabbit.rabbit_opts``
# (options ``heartbeat_timeout_threshold``, ``direct_mandatory_flag`` and
# ``rabbit_qos_prefetch_count``).

#: oslo.messaging notices a RabbitMQ host that vanished without a word (no
#: FIN, no RST: a dead host, a dropped route) only through AMQP heartbeats.
#: With its default threshold (60 s) a waiting consumer -- a storage worker's
#: RPC server -- sat on a dead connection for up to a minute after the broker
#: was back (tests/faults/test_broker.py, silent outage). Operators can still
#: set [oslo_messaging_rabbit] heartbeat_timeout_threshold themselves.
RABBIT_HEARTBEAT_TIMEOUT = 10

#: Unacknowledged deliveries RabbitMQ hands one consumer (oslo.messaging's
#: default, 0, is unlimited). A storage worker acknowledges a call when one
#: of its executor threads takes it, so a running worker is never short of
#: calls; a worker that stopped running (SIGSTOP, a stalled host) holds at
#: most this many per consumer instead of a third of every call sent while
#: it stands still -- the edges re-send those (``herald.common.rpc.resend``),
#: and the other workers take every other call (issue 26). One, not a few:
#: with 4, a re-send could land on the stopped worker again (it still had
#: room) and its client waited two re-send delays (tests/faults/
#: test_invisible_faults.py: 1.2 s instead of 0.7 s). Operators can still
#: set [oslo_messaging_rabbit] rabbit_qos_prefetch_count themselves.
RABBIT_PREFETCH = 1


def messaging_defaults() -> None:
    """Herald's defaults for oslo.messaging's RabbitMQ driver options."""
    # The driver's own option objects: the copies list_opts() returns would
    # not change what the driver registers.
    from oslo_messaging._drivers import impl_rabbit

    # Replies go without the mandatory flag: with publisher confirms off
    # ([rpc] publisher_confirms), a reply the broker returned for a caller
    # that is gone would raise in whichever thread next read the connection;
    # without the flag the broker drops it, which is all a returned reply
    # could lead to anyway.
    cfg.set_defaults(impl_rabbit.rabbit_opts,
                     heartbeat_timeout_threshold=RABBIT_HEARTBEAT_TIMEOUT,
                     direct_mandatory_flag=False,
                     rabbit_qos_prefetch_count=RABBIT_PREFETCH)


# -- 2. AMQP consumers' first wait after a message ------------------------------
# Targets oslo.messaging 18.3.x: ``oslo_messaging._drivers.amqpdriver.
# ACK_REQUEUE_EVERY_SECONDS_MIN`` (0.001), read by ``AMQPListener.poll`` and
# ``ReplyWaiter.poll`` at each wait.
#
# Each consumer thread of oslo.messaging's AMQP driver (an RPC server's
# listener, a caller's reply waiter) waits for the next message with a
# timeout. After every message that timeout starts again at 1 ms and doubles
# up to 5 s. The short first timeouts exist for notification listeners:
# their acknowledgements and requeues are queued by other threads and only
# run when the consumer thread comes round. An RPC request is acknowledged
# in the consumer callback, and a reply too, so in a process that only
# speaks RPC, as every Herald service does, those wake-ups find nothing to
# do. Each still costs a pass through kombu's ensure/autoretry wrappers, a
# socket timeout and an exception: four to six of them per message when
# messages come every 10-30 ms, on every consumer of every process
# (docs/performance-history.md, eighth round).
#
# One second instead: a message still wakes its consumer at once (the
# socket becomes readable), and an idle consumer checks the connection's
# heartbeats as often as before. The price: a consumer told to stop notices
# at its next wake-up, so stopping a busy one can take up to that second.
# Must not be used in a process that runs oslo.messaging notification
# listeners: their acknowledgements would wait for the next message.

#: The first wait of a consumer thread after a message, in seconds.
FIRST_WAIT_AFTER_A_MESSAGE = 1.0


def amqp_first_wait() -> None:
    """Set oslo.messaging's AMQP consumers' first wait after a message."""
    from oslo_messaging._drivers import amqpdriver

    if not hasattr(amqpdriver, "ACK_REQUEUE_EVERY_SECONDS_MIN"):
        LOG.warning("oslo.messaging has no ACK_REQUEUE_EVERY_SECONDS_MIN: its AMQP "
                    "consumers keep their own polling")
        return
    amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN = FIRST_WAIT_AFTER_A_MESSAGE


# -- 3. publisher confirms --------------------------------------------------------
# Targets kombu 5.7.x: ``kombu.transport.pyamqp.Transport.Connection`` (py-amqp's
# ``amqp.Connection``, whose ``confirm_publish`` argument kombu sets from
# ``transport_options``; oslo.messaging 18.3.x always passes
# ``confirm_publish=True`` and has no option of its own to turn it off).
#
# Every publish -- a coalesced batch sent to the storage workers, every reply
# sent back -- then waits for the broker's ``basic.ack``: one more round trip
# and one more wake-up of the publishing thread. Without it RabbitMQ's CPU
# per websocket post fell by a fifth (docs/performance-history.md, eleventh round).
# Herald's RPC does not need the confirm to be safe: a client is told a
# message is stored only once a worker committed it and its reply came
# back; a call whose request or reply the broker loses is answered 503 when
# ``[rpc] call_timeout`` runs out. Replies go without the ``mandatory`` flag
# (patch 1) so that a returned reply cannot surface as an error.

#: kombu's py-amqp connection class, as kombu ships it.
KOMBU_CONNECTION = pyamqp.Transport.Connection


class UnconfirmedConnection(KOMBU_CONNECTION):  # type: ignore[misc, valid-type]
    """A py-amqp connection whose channels publish without confirm mode."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["confirm_publish"] = False
        super().__init__(*args, **kwargs)


def publisher_confirms(enabled: bool) -> None:
    """Open later RabbitMQ connections with (True, kombu's own) or without
    publisher confirms, for every oslo.messaging transport created afterwards
    (py-amqp is used by nothing else in Herald's services)."""
    pyamqp.Transport.Connection = KOMBU_CONNECTION if enabled else UnconfirmedConnection


# -- 4. requests delivered after an RPC server's stop ------------------------------
# Targets oslo.messaging 18.3.x: ``MessageHandlingServer.listener`` (a
# ``_drivers.base.PollStyleListenerAdapter``), its ``_poll_style_listener``
# (``_drivers.amqpdriver.AMQPListener``), whose ``__call__(message)`` is the
# consumer callback and ``_shutdown`` the event stop() sets.
#
# oslo.messaging's RPC listener acknowledges a request in its consumer
# callback, before anything runs it. stop() only stops polling: requests
# RabbitMQ had already pushed to this consumer are still read while the
# connection closes, acknowledged there, and never run -- the caller waits
# for its timeout (seen as 503s on every SIGTERM of a busy worker). Left
# unacknowledged instead, RabbitMQ hands them to another worker when the
# channel closes. Best effort: another driver or a changed layout is left
# alone.


def leave_late_deliveries_unacked(server: Any) -> None:
    """Make a started RPC server's AMQP listener ignore deliveries that
    arrive after its stop()."""
    poll_listener = getattr(getattr(server, "listener", None), "_poll_style_listener", None)
    shutdown = getattr(poll_listener, "_shutdown", None)
    if poll_listener is None or shutdown is None or not callable(poll_listener):
        return
    base = type(poll_listener)

    class _StopAware(base):  # type: ignore[misc, valid-type]
        def __call__(self, message: Any) -> Any:
            if self._shutdown.is_set():
                LOG.debug("leaving a request delivered after stop to another worker")
                return None
            return super().__call__(message)

    poll_listener.__class__ = _StopAware


def apply(conf: cfg.ConfigOpts) -> None:
    """Every patch, as a service process needs them (at start-up)."""
    messaging_defaults()
    amqp_first_wait()
    publisher_confirms(conf.rpc.publisher_confirms)
