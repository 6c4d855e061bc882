"""Herald's REST API service (Zaqar v2 compatible), built on Tornado.

``service.APIService`` owns the HTTP server (``in_flight``: the requests it
drains when it stops); ``app.make_app`` builds the routes; ``handlers``
hold one module per resource; the request rules they apply are
``herald.common.edge`` (shared with the websocket gateway). Every
operation goes through ``herald.common.rpc.storage_api``: this package holds
no data and must never touch the database or import ``herald.storage``.
"""
