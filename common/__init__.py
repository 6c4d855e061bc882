"""Code shared by every Herald service.

Configuration options, the RPC plumbing between the edge services and the
storage workers, typed errors, request context and time helpers live here.
Nothing in this package may import from a service package
(``herald.api``, ``herald.storage``, ``herald.ws_gateway``): services depend
on ``common``, never the other way round.
"""
