"""Options of the ``[rpc]`` group: how edge services call the storage workers."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "rpc"

ALL_OPTS = [
    cfg.FloatOpt(
        "call_timeout",
        default=10.0,
        min=0.1,
        help="Seconds an RPC call to the storage workers may take before the "
        "request fails with 503. A request waiting behind coalesced batches in "
        "flight counts from its arrival, and publishing to a broker that is "
        "being reconnected may add up to 2 s. Possible values: a number >= 0.1.",
    ),
    cfg.FloatOpt(
        "resend_after",
        default=0.5,
        min=0.0,
        help="Least seconds an edge service (api, ws-gateway) waits for a storage "
        "worker to answer a call before it sends the call again, to whichever "
        "worker takes it (at most 3 sends per call, the first answer wins). A "
        "worker that died or stopped with the call in hand then costs its client "
        "this delay instead of call_timeout and a 503. While the workers answer "
        "slowly (a burst, a saturated pool) the edge waits longer: the recent "
        "answer time plus four deviations, as TCP times its retransmissions "
        "(RFC 6298), doubled after each re-send until a call is answered on its "
        "first send -- so a busy pool is not sent its work twice. Only calls that "
        "are safe to run twice are re-sent: reads, deletes and updates, and posts, "
        "which the workers recognise by their operation id; claims and pops are "
        "not. Possible values: a number > 0, well below call_timeout; 0 sends "
        "every call once.",
    ),
    cfg.FloatOpt(
        "worker_check_interval",
        default=0.2,
        min=0.0,
        help="Seconds between an edge service's checks, on the message broker, "
        "of how many storage workers consume the storage topic. When the count "
        "drops (a worker's broker connection closed: it died or stopped), every "
        "call in flight is sent again at once instead of after resend_after. "
        "Possible values: a number > 0 (one passive queue declare per check); 0 "
        "turns the check off (re-sends then wait for resend_after).",
    ),
    cfg.IntOpt(
        "call_retry",
        default=1,
        min=0,
        help="How many times a call retries connecting to the broker before it "
        "fails (never infinite, so a dead broker gives 503 instead of a hang). "
        "Possible values: an integer >= 0.",
    ),
    cfg.IntOpt(
        "client_threads",
        default=32,
        min=1,
        help="Threads in each edge service's pool for blocking RPC calls, so the "
        "Tornado event loop never blocks. Possible values: an integer >= 1.",
    ),
    cfg.IntOpt(
        "coalesce_max_batch",
        default=64,
        min=1,
        help="Most storage operations an edge service (api, ws-gateway) sends in "
        "one coalesced 'batch' RPC call; concurrent operations are queued and "
        "flushed when this many are waiting or coalesce_max_delay after the "
        "first, each keeping its own outcome. Possible values: an integer >= 1 "
        "(1 disables coalescing: one RPC call per operation).",
    ),
    cfg.FloatOpt(
        "coalesce_max_delay",
        default=0.001,
        min=0.0,
        max=0.1,
        help="Seconds the first queued storage operation may wait for others to "
        "join its batch while an earlier batch is still in flight (an idle edge "
        "sends at the next event loop turn and never waits). Possible values: a "
        "number from 0 (always flush at the next event loop turn: only operations "
        "submitted together are batched) to 0.1.",
    ),
    cfg.IntOpt(
        "coalesce_max_inflight",
        default=2,
        min=0,
        help="Most coalesced batches an edge service keeps in flight to the "
        "storage workers at once; while that many wait for their replies, new "
        "operations queue and go together in the next batch as soon as one is "
        "answered, so batches grow with the load instead of each carrying one "
        "operation. A queue of coalesce_max_batch operations is sent regardless. "
        "Fewer, larger batches cost less CPU per operation, which is what a "
        "loaded machine's latency waits for; too few leave storage workers idle "
        "and put a slow batch in front of everything behind it. Possible values: "
        "an integer >= 1 (the number of storage workers is a good start), or 0 "
        "for no bound (batches are then only formed by coalesce_max_delay).",
    ),
    cfg.BoolOpt(
        "publisher_confirms",
        default=False,
        help="Whether every RPC publish (a call to the storage workers, a reply) "
        "waits for RabbitMQ to confirm it, as oslo.messaging does by default. "
        "A client is told a message is stored only after a worker committed it "
        "and its reply arrived, so a publish the broker loses is answered 503 at "
        "call_timeout either way; a confirm makes a publish on a dead connection "
        "or one larger than the broker's max_message_size fail at once instead, "
        "and costs a round trip through the broker per publish. Possible values: "
        "false (the default: no confirms, lower latency and broker CPU) or true.",
    ),
    cfg.ListOpt(
        "bus_keys",
        default=[],
        secret=True,
        help="Shared secret keys that authenticate RPC messages between Herald's "
        "services: the first key signs every call and cast (HMAC-SHA256), every "
        "key listed is accepted when verifying, so a key is rotated by adding the "
        "new one second on every service, then moving it first, then removing the "
        "old one. Workers and gateways reject (and log) unsigned, forged and "
        "replayed messages. Every service of one deployment must share them. "
        "Possible values: a comma-separated list of long random strings; empty "
        "(the default) turns signing and verification off, and each service logs "
        "a warning at start that the bus is unauthenticated.",
    ),
    cfg.FloatOpt(
        "bus_max_skew",
        default=60.0,
        min=1.0,
        help="Seconds a signed RPC message's timestamp may differ from the "
        "receiver's clock before it is rejected as stale; a message's nonce is "
        "remembered that long (plus as much again for clocks that differ) so a "
        "replay within the window is rejected too, by whichever worker or "
        "gateway it is sent to: with a redis:// [coordination] backend_url the "
        "nonces are kept in that Redis, shared by the deployment; otherwise in "
        "each process's memory. Possible values: a number >= 1 (clocks of the "
        "services must agree within it).",
    ),
    cfg.StrOpt(
        "bus_nonce_unreachable",
        default="local",
        choices=[
            ("reject", "fail closed: a signed message whose nonce cannot be "
             "checked in Redis is not run (a call is answered 503, a cast is "
             "dropped) until Redis answers again"),
            ("local", "fail open to the process's own memory: the message runs "
             "when this process has not seen its nonce, so storage keeps working "
             "without Redis but a replay sent to another worker is not caught "
             "while Redis is unreachable"),
        ],
        help="What a worker or gateway does with a signed RPC message when the "
        "shared nonce store (the Redis of [coordination] backend_url) does not "
        "answer within bus_nonce_timeout. Only used with bus_keys and a redis:// "
        "backend_url. The default keeps storage available through a Redis outage, as "
        "coordination does; choose reject where a replay window during an outage "
        "is worse than an outage. Possible values: local (the default) or reject.",
    ),
    cfg.FloatOpt(
        "bus_nonce_timeout",
        default=0.5,
        min=0.01,
        max=5.0,
        help="Seconds a worker or gateway waits for Redis (connecting, then "
        "answering) when it records a signed RPC message's nonce; past it Redis "
        "counts as unreachable (see bus_nonce_unreachable) and is not tried again "
        "for a second. Possible values: a number from 0.01 to 5.",
    ),
    cfg.StrOpt(
        "topic",
        default="herald-storage",
        help="oslo.messaging topic the storage workers listen on. Possible "
        "values: any topic name; every service of one deployment must agree.",
    ),
    cfg.StrOpt(
        "ws_topic",
        default="herald-ws",
        help="oslo.messaging topic the websocket gateways listen on, each under "
        "its own member id as server, for notifications pushed by the storage "
        "workers to websocket subscribers. Possible values: any topic name; "
        "every service of one deployment must agree.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)
