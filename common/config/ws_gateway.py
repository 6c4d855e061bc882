"""Options of the ``[ws_gateway]`` group: the Tornado WebSocket gateway.

Zaqar keeps the listener under ``[drivers:transport:websocket]`` (bind, port);
the limits below are Herald's own: they bound what one client can make a
gateway hold in memory.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "ws_gateway"

ALL_OPTS = [
    cfg.HostAddressOpt(
        "bind",
        default="127.0.0.1",
        help="Address the WebSocket gateway listens on. Possible values: an "
        "IPv4 or IPv6 address or a host name; 0.0.0.0 listens on every interface.",
    ),
    cfg.PortOpt(
        "port",
        default=9000,
        help="TCP port of the WebSocket gateway (websocket upgrades on any path, "
        "GET /health for operators). Possible values: 0 (pick a free port) to 65535.",
    ),
    cfg.IntOpt(
        "max_frame_size",
        default=1048576,
        min=1024,
        help="Largest incoming websocket message, in bytes (after reassembly of "
        "fragments). A larger one closes the connection with code 1009 (message "
        "too big) before it is decoded. It must exceed [limits] "
        "max_messages_post_size plus the request envelope. Possible values: an "
        "integer >= 1024.",
    ),
    cfg.IntOpt(
        "outbound_queue_size",
        default=64,
        min=1,
        help="Replies (and, later, notifications) one connection may have waiting "
        "to be written to its socket. A client that stops reading fills it and is "
        "disconnected with close code 1008 instead of growing the gateway's "
        "memory. Possible values: an integer >= 1.",
    ),
    cfg.IntOpt(
        "outbound_max_bytes",
        default=16777216,
        min=1024,
        help="Bytes of encoded frames one connection may have waiting to be "
        "written; exceeding it disconnects the client (close code 1008) like a "
        "full outbound queue. A single frame larger than this is still sent when "
        "nothing else is waiting. Possible values: an integer >= 1024.",
    ),
    cfg.IntOpt(
        "max_inflight_requests",
        default=32,
        min=1,
        help="Requests of one connection being processed at the same time. When "
        "reached, the gateway stops reading that connection's socket until one "
        "finishes (TCP back-pressure on the client). Possible values: an integer "
        ">= 1.",
    ),
    cfg.IntOpt(
        "max_connections",
        default=10000,
        min=1,
        help="Websocket connections the gateway keeps open at once. A handshake "
        "beyond it is refused with HTTP 503 (the client retries later or uses "
        "another gateway), so a flood of idle connections cannot exhaust the "
        "gateway's memory or file descriptors. Possible values: an integer >= 1.",
    ),
    cfg.FloatOpt(
        "handshake_timeout",
        default=10.0,
        min=0.1,
        help="Seconds a TCP connection may take to send its complete HTTP "
        "request (the websocket handshake) before the gateway closes it, so "
        "connections that never finish their headers (slowloris) do not pile "
        "up. Possible values: a number >= 0.1.",
    ),
    cfg.FloatOpt(
        "write_timeout",
        default=30.0,
        min=0.1,
        help="Seconds one frame may take to be accepted by the client's socket "
        "before the client counts as not reading and is disconnected (close code "
        "1008). Possible values: a number >= 0.1.",
    ),
    cfg.FloatOpt(
        "shutdown_timeout",
        default=None,
        min=0.0,
        help="Seconds a stopping gateway waits for in-flight requests to finish; "
        "a request still running then is answered 503, and the connections are "
        "closed with code 1001 (going away). Possible values: a number >= 0; "
        "unset (the default) waits long enough for any storage call to be "
        "answered or given up: [rpc] call_timeout plus 3 s.",
    ),
    cfg.FloatOpt(
        "ping_interval",
        default=0.0,
        min=0.0,
        help="Seconds between websocket pings the gateway sends to detect dead "
        "peers (a peer that does not answer within the interval is closed). "
        "Possible values: 0 (no pings) or a positive number.",
    ),
    cfg.FloatOpt(
        "token_revalidate_interval",
        default=300.0,
        min=0.0,
        help="With [DEFAULT] auth_strategy = keystone: seconds after which an "
        "authenticated websocket connection's token is checked with Keystone "
        "again, before the connection's next action. A token revoked in the "
        "meantime ends the connection's authentication (that action and the "
        "next ones are answered 403 until it authenticates again). Keep it at "
        "or below [keystone_authtoken] token_cache_time, the delay with which "
        "REST requests notice a revocation. Possible values: 0 (check before "
        "every action) or a positive number.",
    ),
    cfg.ListOpt(
        "allowed_origins",
        default=[],
        help="Web page origins (scheme://host[:port], as browsers send them in the "
        "Origin header) whose scripts may open websockets to this gateway, besides "
        "the gateway's own origin (its /console page), which is always allowed. "
        "Clients that send no Origin header (non-browser clients: "
        "python-zaqarclient, websocket libraries) are always allowed. A refused "
        "handshake gets HTTP 403. Possible values: empty (only the gateway's own "
        "origin), a comma-separated list of origins such as "
        "https://console.example.com,http://localhost:3000, or * (any origin).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)
