"""Herald's testing helpers, shipped with the package (nameko's ``testing`` is the model).

What lives where:

- ``topology``: the topology launcher. Herald's services as real
  subprocesses (``herald storage|api|ws-gateway|run``, nginx in front),
  wired to a broker, database and tooz backend, with logs per process.
  Used by the end-to-end and fault tests and by ``make bench``.
- ``processes``: one such subprocess (``Service``) and the readiness checks
  (free port, ping, gateway health, log line) the launcher builds on.
- ``stack``: the embedded stack. One storage worker behind an
  ``InProcessCaller`` (the same JSON serialization as the bus), the REST API
  and any number of websocket gateways on an event loop thread.
- ``faults``: ``FaultyCaller``, a caller that fails or delays calls about
  ``down-*``, ``bug-*``, ``crash-*`` and ``slow-*`` queues.
- ``clock``: ``FakeClock``, the storage workers' time, moved by hand.
- ``polling``: ``wait_until``, a deadline-bounded poll, instead of sleeping.
- ``log_events``: ``LogEvents``, Herald's log records in this process (a
  parked long poll), to wait for instead of sleeping.
- ``otlp_sink``: ``OTLPSink``, a local OTLP/HTTP trace receiver the
  processes of a test (or the bench) export their spans to.
- ``launch``: ``herald`` with some loggers at DEBUG, for topologies whose
  tests wait for a DEBUG line in a process's log.

Nothing in Herald's services imports this package, and it must not import
pytest or the repository's ``tests`` package: a project testing against
Herald gets it with ``pip install herald``. Import the module you need
(``from herald.testing.stack import EmbeddedStack``); this file imports
nothing, so ``import herald.testing`` costs nothing.
"""
