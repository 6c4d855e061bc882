"""HMAC authentication of Herald's RPC messages, and of the replies to calls.

Anyone who can publish to RabbitMQ could otherwise make a storage worker run
any storage method for any project, push frames to websocket subscribers,
or answer an edge's call with data of their choosing. With ``[rpc]
bus_keys`` set, every call and cast a Herald service sends carries one extra
keyword argument, ``herald_bus_auth``::

    {"v": 2, "ts": <epoch float>, "nonce": <hex>, "kid": <key id>, "sig": <hex>,
     "reply": 1}

``sig`` is an HMAC-SHA256 over the canonical JSON (sorted keys, no spaces) of
``[method, kwargs, context, ts, nonce]``, all in their *serialized* form (what
``JsonSerializer`` puts on the wire), so sender and receiver hash identical
data. Version 2 (``"v": 2`` in the argument; what Herald signs) takes
orjson's text (``serializer.canonical_bytes``); version 1 (no ``v``) took
the ``json`` module's (``serializer.canonical_json``), ~25 times slower to
write: a twentieth of the api's time on batches of 1 KiB bodies. The two
texts are the same bytes for ASCII-only values. Verifiers accept both, so
a peer that still signs version 1 keeps working; a peer that only knows
version 1 rejects version 2, so upgrade every Herald service of a
deployment together.

``kid`` names the key (a digest prefix, not the key): the first key of
``bus_keys`` signs, every key verifies, which is how keys rotate (add the new
key second everywhere, then move it first, then drop the old one). Replies
follow the same rule.

The receiving side (``RPCServer``'s endpoint proxy, for every endpoint) pops
the argument and rejects the message -- a WARNING naming the method and the
reason -- when it is missing, names an unknown key, does not match, is
older or newer than ``[rpc] bus_max_skew`` seconds, or repeats a nonce seen
within that window (a replay). Nonces go to a ``nonce_store``: with Redis
coordination one store shared by every worker and gateway, so a replay sent
to a *different* worker is caught too; when that store cannot answer, the
message is not run unless ``[rpc] bus_nonce_unreachable = local`` (see
``nonce_store``).

**Replies.** ``"reply": 1`` (calls only; outside the HMAC, so stripping it
only gets the call rejected) asks the worker to sign its answer. The proxy
then returns, instead of the endpoint's value or raising its typed error::

    {"herald_bus_reply": {"v": 1, "kid": <key id>, "sig": <hex>},
     "result": <value>}            # or "error": {"module", "class", "args"}

``sig`` is an HMAC-SHA256 over the canonical JSON of the object
``{"reply_to": <the request's nonce>, "method": <method>, "result"|"error":
...}`` -- an object, where a request's signed text is an array, so neither
can pass for the other. Binding it to the request's nonce means a genuine
reply captured from one call is worthless for any other call.
``SigningClient.call`` (every Herald caller: the edges' ``OsloCaller``, the
readiness probe) verifies it and raises ``UnverifiedReply`` -- a
``ServiceUnavailable``, so the edge answers 503 -- when the reply is
unsigned, malformed, forged, for another request, or an oslo.messaging
failure (a worker with keys never answers a verified call with one: typed
and unexpected errors alike travel as signed ``error`` outcomes). Only a
request that failed verification is answered with a plain (unsigned)
``Forbidden``; the caller therefore sees 503 for it too. A worker answers
an old caller (no ``reply`` flag) the old way; an old worker's unsigned
replies are rejected by a new caller: upgrade workers first.

With no key configured, nothing is signed or checked, and the ``herald``
command logs one WARNING when a service process starts
(``warn_if_unauthenticated``, called by the CLI, the one place that runs once
per process). This module must not know the storage API or
oslo.messaging internals: it signs and verifies plain (method, kwargs,
context) triples and reply outcomes; ``SigningClient`` is the only
oslo-facing piece.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any, NoReturn

import oslo_messaging
from oslo_config import cfg

from herald.common import errors
from herald.common.rpc import nonce_store
from herald.common.rpc.coalescer import error_from_wire, error_to_wire
from herald.common.rpc.serializer import JsonSerializer, canonical_bytes, canonical_json

LOG = logging.getLogger(__name__)

#: The keyword argument the signature travels in.
AUTH_ARG = "herald_bus_auth"
#: The key of a signed reply's signature, next to ``result`` or ``error``.
REPLY_KEY = "herald_bus_reply"

_SERIALIZER = JsonSerializer()


class BusAuthError(Exception):
    """Why a bus message was rejected (the message is the reason)."""


class UnverifiedReply(errors.ServiceUnavailable):
    """A call's reply could not be authenticated; its content was not used.

    A ``ServiceUnavailable``: the edge answers 503, as for a call that failed
    on its way. Raised on the caller's side only, never sent."""


def key_id(key: str) -> str:
    """A public name of ``key``: identifies it without revealing it."""
    return hashlib.sha256(b"herald-bus-key:" + key.encode()).hexdigest()[:12]


def _context_dict(ctxt: Any) -> dict[str, Any]:
    if isinstance(ctxt, dict):
        return dict(ctxt)
    return _SERIALIZER.serialize_context(ctxt)


#: The signature version this process signs with; ``VERSIONS`` it accepts.
VERSION = 2
VERSIONS = (1, 2)
#: The version of reply signatures (``v`` in ``herald_bus_reply``).
REPLY_VERSION = 1


def _digest(key: str, method: str, kwargs: dict[str, Any], context: dict[str, Any],
            ts: float, nonce: str, version: int = VERSION) -> str:
    # The serialized form (bytes as tagged base64), identical on both sides:
    # encode(decode(x)) == x for anything that crossed the bus.
    signed = [method, kwargs, context, ts, nonce]
    canonical = (canonical_bytes(signed) if version == 2
                 else canonical_json(signed).encode())
    return hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()


def _reply_digest(key: str, method: str, nonce: str, outcome: dict[str, Any]) -> str:
    # An object, never an array: no reply signature can pass for a request's.
    # ``canonical_bytes`` tags bytes exactly as the serializer does, so the
    # worker hashes its raw result and the caller the result it decoded.
    signed = {"reply_to": nonce, "method": method, **outcome}
    return hmac.new(key.encode(), canonical_bytes(signed), hashlib.sha256).hexdigest()


def sign(key: str, method: str, kwargs: dict[str, Any], context: Any,
         ts: float | None = None, nonce: str | None = None,
         reply: bool = False) -> dict[str, Any]:
    """The ``herald_bus_auth`` value for one message (``kwargs`` without it);
    ``reply``: ask for a signed reply (calls)."""
    ts = time.time() if ts is None else ts
    nonce = nonce or secrets.token_hex(16)
    auth = {"v": VERSION, "ts": ts, "nonce": nonce, "kid": key_id(key),
            "sig": _digest(key, method, kwargs, _context_dict(context), ts, nonce)}
    if reply:
        auth["reply"] = REPLY_VERSION
    return auth


def reply_nonce(auth: Any) -> str | None:
    """The nonce a reply to this (verified) request is bound to, or None when
    the caller did not ask for a signed reply."""
    if (isinstance(auth, dict) and auth.get("reply") == REPLY_VERSION
            and isinstance(auth.get("nonce"), str)):
        return auth["nonce"]
    return None


def sign_reply(key: str, method: str, nonce: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """The signed reply envelope: ``outcome`` (``{"result": ...}`` or
    ``{"error": ...}``) plus its signature."""
    return {REPLY_KEY: {"v": REPLY_VERSION, "kid": key_id(key),
                        "sig": _reply_digest(key, method, nonce, outcome)}, **outcome}


def configured_keys(conf: cfg.ConfigOpts) -> list[str]:
    return [key for key in (conf.rpc.bus_keys or []) if key]


def warn_if_unauthenticated(conf: cfg.ConfigOpts) -> None:
    """Log that bus messages are not authenticated, when no key is configured.

    Stateless: the caller decides how often (the CLI, once per process)."""
    if configured_keys(conf):
        return
    LOG.warning("[rpc] bus_keys is not set: RPC messages on the bus are NOT "
                "authenticated; anyone who can publish to the broker can drive "
                "the storage workers and websocket gateways")


class Signer:
    """The calling side: signs with the first key, verifies replies with any."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._key = keys[0]
        self._keys = {key_id(key): key for key in keys}

    def sign(self, method: str, context: Any, kwargs: dict[str, Any],
             reply: bool = False) -> dict[str, Any]:
        """The signature argument for ``kwargs`` (which must not hold one)."""
        return sign(self._key, method, kwargs, context, reply=reply)

    def add_auth(self, method: str, context: Any, kwargs: dict[str, Any],
                 reply: bool = False) -> dict[str, Any]:
        """``kwargs`` plus the signature argument (a new dict)."""
        return {**kwargs, AUTH_ARG: self.sign(method, context, kwargs, reply)}

    def open_reply(self, method: str, nonce: str, reply: Any) -> Any:
        """The result of a signed reply to the call ``(method, nonce)``, or its
        typed error raised; ``BusAuthError`` when the reply does not vouch
        for itself or belongs to another request."""
        if not isinstance(reply, dict) or REPLY_KEY not in reply:
            raise BusAuthError("unsigned reply")
        auth = reply[REPLY_KEY]
        outcome = {k: v for k, v in reply.items() if k != REPLY_KEY}
        if (not isinstance(auth, dict) or set(outcome) not in ({"result"}, {"error"})
                or auth.get("v") != REPLY_VERSION
                or not all(isinstance(auth.get(k), str) for k in ("kid", "sig"))):
            raise BusAuthError("malformed reply signature")
        key = self._keys.get(auth["kid"])
        if key is None:
            raise BusAuthError(f"reply signed with unknown key id {auth['kid']!r}")
        try:
            expected = _reply_digest(key, method, nonce, outcome)
        except TypeError as exc:  # not JSON: nothing a worker signs
            raise BusAuthError(f"malformed reply ({exc})") from None
        if not hmac.compare_digest(expected, auth["sig"]):
            raise BusAuthError("reply signature does not match this call "
                               "(forged, altered, or the reply to another call)")
        if "result" in outcome:
            return outcome["result"]
        if not isinstance(outcome["error"], dict):
            raise BusAuthError("malformed reply error")
        raise error_from_wire(outcome["error"])


class Verifier:
    """The receiving side: checks signatures with any configured key, records
    nonces in a ``nonce_store``, and signs replies with the first key."""

    def __init__(self, keys: list[str], max_skew: float,
                 nonces: nonce_store.NonceStore | None = None) -> None:
        if not keys:
            raise ValueError("a Verifier needs at least one key")
        self._key = keys[0]
        self._keys = {key_id(key): key for key in keys}
        self._max_skew = max_skew
        self._nonces: nonce_store.NonceStore = (
            nonce_store.MemoryNonceStore() if nonces is None else nonces)

    def verify(self, method: str, kwargs: dict[str, Any], context: Any,
               auth: Any, now: float | None = None) -> None:
        """Raise ``BusAuthError`` unless ``auth`` vouches for this message, or
        ``NonceStoreUnavailable`` when its nonce cannot be checked."""
        if auth is None:
            raise BusAuthError("unsigned")
        if not isinstance(auth, dict):
            raise BusAuthError("malformed signature")
        ts, nonce, kid, sig = (auth.get(k) for k in ("ts", "nonce", "kid", "sig"))
        version = auth.get("v", 1)
        if (isinstance(ts, bool) or not isinstance(ts, int | float)
                or not all(isinstance(v, str) for v in (nonce, kid, sig))
                or isinstance(version, bool) or version not in VERSIONS):
            raise BusAuthError("malformed signature")
        key = self._keys.get(kid)
        if key is None:
            raise BusAuthError(f"unknown key id {kid!r}")
        expected = _digest(key, method, kwargs, _context_dict(context), ts, nonce, version)
        if not hmac.compare_digest(expected, sig):
            raise BusAuthError("bad signature")
        now = time.time() if now is None else now
        if abs(now - ts) > self._max_skew:
            raise BusAuthError(f"stale timestamp ({now - ts:+.1f} s off)")
        # Last, and only for a genuine fresh message: the one step that may
        # cost a round trip to Redis.
        if not self._nonces.first_use(nonce, ts + self._max_skew):
            raise BusAuthError("replayed nonce")

    def check(self, method: str, kwargs: dict[str, Any], context: Any, auth: Any) -> None:
        """``verify``, logging a WARNING and raising ``Forbidden`` when the
        message is not authentic, ``ServiceUnavailable`` when its nonce could
        not be checked (the store logs that, once per outage)."""
        try:
            self.verify(method, kwargs, context, auth)
        except BusAuthError as exc:
            request_id = context.get("request_id") if isinstance(context, dict) else getattr(
                context, "request_id", "-")
            LOG.warning("rejected bus message %s (request %s): %s", method, request_id, exc)
            raise errors.Forbidden("Bus message rejected: not authenticated.") from None
        except nonce_store.NonceStoreUnavailable as exc:
            LOG.debug("bus message %s not run: %s", method, exc)
            raise errors.ServiceUnavailable(
                "The bus replay check is unavailable. Please try again in a few "
                "seconds.") from None

    def sign_reply(self, method: str, nonce: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """``sign_reply`` with the first key (see the module docstring)."""
        return sign_reply(self._key, method, nonce, outcome)

    def reply(self, method: str, nonce: str, result: Any = None,
              error: BaseException | None = None) -> dict[str, Any]:
        """The signed reply carrying ``result``, or ``error`` when given."""
        if error is not None:
            return self.sign_reply(method, nonce, {"error": error_to_wire(error)})
        try:
            return self.sign_reply(method, nonce, {"result": result})
        except TypeError as exc:  # not JSON; oslo would have failed to send it too
            LOG.error("the reply to bus call %s cannot be signed: %s", method, exc)
            return self.sign_reply(method, nonce, {"error": error_to_wire(
                errors.InternalError(f"Unserializable reply to {method}."))})

    def close(self) -> None:
        self._nonces.close()


def signer_from_conf(conf: cfg.ConfigOpts) -> Signer | None:
    keys = configured_keys(conf)
    return Signer(keys) if keys else None


def verifier_from_conf(conf: cfg.ConfigOpts, shared: bool = True,
                       memory: nonce_store.MemoryNonceStore | None = None) -> Verifier | None:
    """The verifier of one RPC server; ``shared=False`` for a fanout
    listener, ``memory`` the process's nonces (see ``nonce_store``)."""
    keys = configured_keys(conf)
    if not keys:
        return None
    return Verifier(keys, conf.rpc.bus_max_skew, nonce_store.from_conf(conf, shared, memory))


def _is_remote_failure(exc: BaseException) -> bool:
    """Whether oslo.messaging raised ``exc`` from a failure *reply* (rebuilt
    remote exception), rather than for a local reason (timeout, broker)."""
    return (isinstance(exc, oslo_messaging.RemoteError)
            or type(exc).__name__.endswith("_Remote"))


class SigningClient:
    """Wraps an oslo.messaging ``RPCClient``: ``call``/``cast`` add the
    signature (when a key is configured), ``call`` accepts only a signed
    reply to that very call, ``prepare`` keeps wrapping."""

    def __init__(self, client: Any, signer: Signer | None) -> None:
        self._client = client
        self._signer = signer

    @classmethod
    def from_conf(cls, client: Any, conf: cfg.ConfigOpts) -> SigningClient:
        return cls(client, signer_from_conf(conf))

    def prepare(self, **kwargs: Any) -> SigningClient:
        return SigningClient(self._client.prepare(**kwargs), self._signer)

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        if self._signer is None:
            return self._client.call(ctxt, method, **kwargs)
        auth = self._signer.sign(method, ctxt, kwargs, reply=True)
        try:
            reply = self._client.call(ctxt, method, **kwargs, **{AUTH_ARG: auth})
        except Exception as exc:
            if not _is_remote_failure(exc):
                raise  # a timeout, the broker: the caller's usual handling
            # A worker with keys answers a verified call with a signed
            # outcome, errors included: anything else is not to be believed.
            self._reject(ctxt, method, f"unsigned failure reply ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})", exc)
        try:
            return self._signer.open_reply(method, auth["nonce"], reply)
        except BusAuthError as exc:
            self._reject(ctxt, method, str(exc), None)

    @staticmethod
    def _reject(ctxt: Any, method: str, reason: str, cause: BaseException | None) -> NoReturn:
        request_id = ctxt.get("request_id") if isinstance(ctxt, dict) else getattr(
            ctxt, "request_id", "-")
        LOG.warning("rejected the reply to bus call %s (request %s): %s", method,
                    request_id, reason)
        raise UnverifiedReply("The storage service's reply could not be authenticated. "
                              "Please try again in a few seconds.") from cause

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        if self._signer is not None:
            kwargs = self._signer.add_auth(method, ctxt, kwargs)
        self._client.cast(ctxt, method, **kwargs)
