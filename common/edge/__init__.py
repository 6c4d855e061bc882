"""The edge layer: every rule a request must pass, written once for REST and websocket.

Both edges (``herald.api`` over HTTP, ``herald.ws_gateway`` over websocket
frames) check the same things before they call storage. Each rule lives in
exactly one module here, with the reference's wording; where the spec
(``rest-v2.md``, ``websocket.md``) gives the two edges different words for
the same refusal, the module offers both, side by side, so they cannot
drift apart.

Map:

* ``limits``   -- the fixed bounds (``MIN_*``, name lengths, ``MAX_DEPTH``)
  and the page-size checks of every listing;
* ``bodies``   -- strict JSON request bodies and typed field extraction;
* ``headers``  -- Client-ID, project header, queue identification,
  ``Accept``, idempotency key;
* ``queues``   -- reserved queue metadata, its defaults, JSON patch, purge;
* ``messages`` -- posts, listings by ids, bulk delete and pop, release;
* ``claims``   -- claim create and renew;
* ``subscriptions`` -- subscription bodies (field rules: ``herald.common.subscriptions``);
* ``origins``  -- the browser-origin allow-list of REST CORS and the
  websocket handshake;
* ``shapes``   -- reply shapes both edges share (the popped message);
* ``unavailable`` -- how each edge words a 503 (REST: the operation's
  sentence; websocket: the reference's per-action summary).

Rules for everything in this package: pure functions of their arguments and
the ``[limits]`` options; no I/O, no storage calls, no Tornado, no import of
``herald.api`` or ``herald.ws_gateway``. Refusals are ``herald.common.errors``
types (or ``headers.RefusedHeader``) whose ``description`` is the text the
client sees; the edge decides how to render it. Nothing here keeps state, so
everything is safe to call from any thread or task.
"""
