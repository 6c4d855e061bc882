"""Herald's WebSocket gateway (``herald ws-gateway``).

Serves the Zaqar WebSocket API over JSON text and msgpack binary frames and
forwards every operation to the storage workers over RPC. Holds no data
apart from live connections.
"""
