"""RPC between the edge services (api, ws-gateway) and the storage workers.

- ``operations``: the table of storage operations (arguments, writes, route,
  503 sentence, coalescing class), declared once for both sides.
- ``storage_api``: the versioned storage RPC API, the one contract both sides
  share (client proxy on the edge, generated from ``operations``; the
  worker's endpoint implements it).
- ``serializer``: the JSON serializer for contexts and payloads.
- ``caller``: how a call crosses: over oslo.messaging (RabbitMQ) or through
  the embedded in-process dispatcher, both off the Tornado event loop.
- ``coalescer``: batches concurrent calls of an edge into one ``batch`` call.
- ``resend``: sends a call no worker answers again (a timer, and the
  broker's count of workers consuming the topic).
- ``storage_link``: an edge service's storage API with the caller and
  wake-up listener it owns.
- ``local_bus``: what services of one process share without the broker
  (long-poll waiters, local gateways, the nonce memory).
- ``bus_auth``, ``nonce_store``: signatures of calls, casts and replies on
  the bus, and the shared memory of nonces that catches replays.
- ``ws_push``: casts of websocket pushes to the gateway holding a connection.
- ``server``: the worker-side oslo.messaging RPC server with a lifecycle.
- ``wakeups``: long-poll wake-ups from the workers to every edge (fanout).
- ``compat``: every patch of oslo.messaging and kombu internals, each with
  the upstream versions it targets (applied once per process, at start).
"""

STORAGE_TOPIC = "herald-storage"
# 1.1 added the subscription methods, 1.2 ``batch`` (coalesced calls), 1.3
# idempotent posts and delivery history, 1.4 pools and flavors, 1.5 claims
# released with their websocket connection, 1.6 dead-letter redrive, 1.7
# ``message_release``. Edges
# and workers of one deployment must run the same version (workers first
# when upgrading).
STORAGE_API_VERSION = "1.7"
# Modules whose exceptions are rebuilt as the same class on the caller's side.
ALLOWED_REMOTE_EXMODS = ["herald.common.errors"]
