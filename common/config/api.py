"""Options of the ``[api]`` group: the Tornado REST API service."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "api"

ALL_OPTS = [
    cfg.HostAddressOpt(
        "bind",
        default="127.0.0.1",
        help="Address the REST API listens on. Possible values: an IPv4 or "
        "IPv6 address or a host name; 0.0.0.0 listens on every interface.",
    ),
    cfg.PortOpt(
        "port",
        default=8888,
        help="TCP port of the REST API. Possible values: 0 (pick a free port) "
        "to 65535.",
    ),
    cfg.FloatOpt(
        "drain_timeout",
        default=None,
        min=0.0,
        help="Seconds a stopping REST API (SIGTERM) lets the requests in flight "
        "finish. From the signal on it accepts no new connection and answers "
        "every request, on connections already open, with Connection: close; a "
        "request still running at the deadline is answered 503, then the "
        "remaining (idle) connections are closed. Possible values: a number >= "
        "0; unset (the default) waits long enough for any storage call to be "
        "answered or given up: [rpc] call_timeout plus 3 s.",
    ),
    cfg.IntOpt(
        "max_body_size",
        default=1048576,
        min=1024,
        help="Largest request body, in bytes, that the API reads at all; larger "
        "requests are refused with 400 before they are parsed. Possible values: "
        "an integer of at least 1024.",
    ),
    cfg.ListOpt(
        "cors_allowed_origins",
        default=[],
        help="Web page origins (scheme://host[:port]) whose scripts may call the "
        "REST API from a browser (CORS). A request whose Origin header is listed "
        "gets Access-Control-Allow-Origin and the related headers, and preflight "
        "OPTIONS requests are answered; others get no CORS headers, so the browser "
        "keeps the reply from the page. Possible values: empty (no CORS headers, "
        "the default), a comma-separated list of origins such as "
        "https://console.example.com,http://localhost:3000, or * (any origin).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)
