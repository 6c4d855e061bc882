"""One delivery attempt per subscriber type (notifications.md §4-5, websocket.md §6).

``Deliverer.attempt(row)`` sends one outbox row once and reports an
``Outcome``; it never retries, sleeps or touches the database (the
dispatcher decides what happens next):

* ``http(s)://`` and ``trust+http(s)://``: POST of the payload (or of
  ``options.post_data`` with ``"$zaqar_message$"`` replaced by it), headers
  ``Content-Type: application/json`` + ``options.post_headers``, then the
  Standard Webhooks headers ``webhook-id`` / ``webhook-timestamp`` /
  ``webhook-signature`` (``herald.common.webhook_signing``; the row's id,
  the attempt's time, the secrets of the row's ``signing`` record that sign
  now; ``post_headers`` cannot replace them), through one
  aiohttp session whose connections to a subscriber are kept open between
  deliveries (``[notification] webhook_idle_timeout``): a busy subscriber
  costs no TCP handshake and no name lookup per notification. Each attempt
  is bounded by ``[notification] delivery_timeout``; redirects are not
  followed. 200-499 = delivered; 5xx, 1xx, timeouts and connection errors
  = retry.
  ``trust+`` subscribers are posted to without a Keystone token (Herald has
  no Keystone integration): the prefix is only removed.
* ``mailto:``: one plain-text mail through ``[notification] smtp_*``
  (smtplib on a thread pool); any SMTP or socket error = retry.
* websocket connection subscribers: a push to the gateway holding the
  connection (``herald.common.rpc.ws_push``); a gateway that left the
  ``herald.ws`` group or does not know the connection = gone (the
  dispatcher deletes the subscription).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import email.message
import email.utils
import json
import smtplib
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
from oslo_config import cfg

from herald.common import subscriptions as rules
from herald.common import tracing, webhook_signing
from herald.common.rpc.serializer import decode
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import clock
from herald.storage.push_batches import PushBatches

MESSAGE_TOKEN = '"$zaqar_message$"'
#: Threads casting websocket pushes at most (see ``Deliverer``).
PUSH_THREADS = 16
#: Bytes of a webhook's answer read so that its connection can be reused;
#: a longer answer closes the connection instead (its body is never used).
ANSWER_READ_LIMIT = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Outcome:
    delivered: bool = False
    #: Worth another attempt (network error, timeout, 5xx).
    retry: bool = False
    #: The subscriber no longer exists (closed websocket connection).
    gone: bool = False
    status: int | None = None
    error: str | None = None


def webhook_request(url: str, payload: str, options: dict[str, Any],
                    extra_headers: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """(body, headers) of a webhook POST (notifications.md §4)."""
    post_data = options.get("post_data")
    if post_data is not None:
        template = post_data if isinstance(post_data, str) else json.dumps(post_data)
        body = template.replace(MESSAGE_TOKEN, payload)
    else:
        body = payload
    headers = {"Content-Type": "application/json", **(extra_headers or {})}
    post_headers = options.get("post_headers")
    if isinstance(post_headers, dict):
        headers.update({str(k): str(v) for k, v in post_headers.items()})
    return body, headers


def mail_for(subscriber: str, payload: str, options: dict[str, Any],
             default_sender: str) -> email.message.EmailMessage:
    """The mail of one notification to a ``mailto:`` subscriber (notifications.md §5)."""
    parsed = urllib.parse.urlparse(subscriber)
    address = urllib.parse.unquote(parsed.path)
    subject = None
    for key, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if key.lower() == "subject":
            subject = value
            break
    if subject is None:
        subject = str(options.get("subject") or "")
    mail = email.message.EmailMessage()
    mail["To"] = address
    mail["From"] = str(options.get("from") or default_sender)
    mail["Subject"] = subject
    mail["Date"] = email.utils.formatdate(usegmt=True)
    mail.set_content(payload)
    return mail


def delivery_span(row: Any) -> tracing.Span | None:
    """The CLIENT span of one delivery attempt (messaging conventions: a
    ``send`` to the subscriber), child of the post that caused it and linked
    to it (its outbox row's traceparent; a root span without one)."""
    post = getattr(row, "traceparent", None) or ""
    kind = row.subscriber_kind if row.subscriber_kind == "websocket" else rules.scheme(
        row.subscriber).removeprefix("trust+")
    webhook = kind in ("http", "https")
    host = urllib.parse.urlsplit(row.subscriber).hostname if webhook else None
    return tracing.start(f"send {'webhook' if webhook else kind}", "client", post, {
        "messaging.system": "herald", "messaging.operation.name": "send",
        "messaging.operation.type": "send", "messaging.destination.name": row.queue,
        "messaging.message.id": getattr(row, "message_id", None),
        "herald.subscription.id": row.subscription_id, "herald.outbox.kind": row.kind,
        "herald.delivery.attempt": int(row.attempts or 0) + 1,
        "url.scheme": kind if webhook else None, "server.address": host,
        "http.request.method": "POST" if webhook else None,
    }, links=[post])


class Deliverer:
    """The transports of one dispatcher: create, use and ``close`` on its
    event loop (the HTTP session belongs to the loop it was made on)."""

    def __init__(self, conf: cfg.ConfigOpts, pusher: WSPushClient,
                 gateway_alive: Callable[[str], bool | None]) -> None:
        self._conf = conf
        opts = conf.notification
        self._timeout = opts.delivery_timeout
        idle = opts.webhook_idle_timeout
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=opts.max_concurrent_deliveries,
                force_close=idle <= 0, keepalive_timeout=idle if idle > 0 else None),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            # Payloads are sent as given; answers are only looked at for
            # their status.
            auto_decompress=False)
        # Blocking transports get threads: smtplib one per attempt in flight;
        # websocket pushes (oslo.messaging casts, which return once the broker
        # has the message) fewer, below oslo.messaging's connection pool
        # (rpc_conn_pool_size, 30), which otherwise made every burst of
        # pushes wait for a pooled connection with a warning per cast.
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=opts.max_concurrent_deliveries, thread_name_prefix="delivery")
        self._push_threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(PUSH_THREADS, opts.max_concurrent_deliveries),
            thread_name_prefix="ws-push")
        self._pusher = pusher
        self._gateway_alive = gateway_alive
        self._pushes: PushBatches[tuple[str, Any, str], Outcome] = PushBatches(
            self._send_pushes, self._push_threads)

    async def attempt(self, row: Any) -> Outcome:
        if not tracing.active():
            return await self._attempt(row, "")
        try:
            span = delivery_span(row)
        except ValueError:  # a subscriber URI urllib cannot split: trace nothing
            span = None
        outcome = await self._attempt(row, span.traceparent if span is not None else "")
        if span is not None:
            span.set("http.response.status_code", outcome.status)
            if not outcome.delivered:
                span.fail(outcome.error or "not delivered")
            span.end()
        return outcome

    async def _attempt(self, row: Any, traceparent: str) -> Outcome:
        """One attempt; ``traceparent``: its span's, for the webhook's header."""
        options = json.loads(row.options) if row.options else {}
        try:
            if row.subscriber_kind == "websocket":
                return await self._websocket(row)
            kind = rules.scheme(row.subscriber)
            if kind == "mailto":
                return await self._mail(row, options)
            if kind in ("http", "https", "trust+http", "trust+https"):
                return await self._webhook(row, options, traceparent)
            return Outcome(error=f"unsupported subscriber type {kind!r}")
        except Exception as exc:  # any failure of a transport is a failed attempt
            return Outcome(retry=True, error=f"{type(exc).__name__}: {exc}")

    async def _webhook(self, row: Any, options: dict[str, Any],
                       traceparent: str = "") -> Outcome:
        url = row.subscriber
        if url.startswith("trust+"):
            url = url[len("trust+"):]
        # The receiver's trace continues ours (W3C Trace Context).
        body, headers = webhook_request(url, row.payload, options,
                                        {"traceparent": traceparent} if traceparent else None)
        now = clock.now()
        data = body.encode()
        for name in [n for n in headers if n.lower() in webhook_signing.HEADERS]:
            del headers[name]  # a post_headers entry would be a second, wrong one
        # The row's identity, not the attempt's: every retry carries the same id.
        headers.update(webhook_signing.headers(
            webhook_signing.signing_secrets(getattr(row, "signing", None), now),
            webhook_signing.webhook_id(row.subscription_id, row.seq), int(now), data))
        # Connection errors and timeouts raise: ``attempt`` makes them retries.
        async with self._http.post(url, data=data, headers=headers,
                                   allow_redirects=False) as response:
            code = response.status
            length = response.content_length
            if length is not None and length <= ANSWER_READ_LIMIT:
                await response.read()  # read to the end: the connection is reused
        if 200 <= code < 500:
            return Outcome(delivered=True, status=code)
        return Outcome(retry=True, status=code, error=f"HTTP {code}")

    def _send_mail(self, mail: email.message.EmailMessage) -> None:
        opts = self._conf.notification
        with smtplib.SMTP(opts.smtp_host, opts.smtp_port, timeout=self._timeout) as smtp:
            if opts.smtp_starttls:
                smtp.starttls()
            if opts.smtp_user:
                smtp.login(opts.smtp_user, opts.smtp_password or "")
            smtp.send_message(mail)

    async def _mail(self, row: Any, options: dict[str, Any]) -> Outcome:
        mail = mail_for(row.subscriber, row.payload, options,
                        self._conf.notification.smtp_sender)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, self._send_mail, mail)
        return Outcome(delivered=True, status=250)

    async def _websocket(self, row: Any) -> Outcome:
        target = rules.parse_ws_subscriber(row.subscriber)
        if target is None:
            return Outcome(gone=True, error="not a websocket subscriber URI")
        gateway_id, connection_id = target
        payload = decode(json.loads(row.payload))
        return await self._pushes.push(gateway_id, (connection_id, payload, row.request_id))

    def _send_pushes(self, gateway_id: str, pushes: list[tuple[str, Any, str]]
                     ) -> list[Outcome]:
        """One batch of pushes to a gateway (on a push thread)."""
        if self._gateway_alive(gateway_id) is False:
            return [Outcome(gone=True, error=f"gateway {gateway_id} is gone")] * len(pushes)
        pushed = self._pusher.push_many(gateway_id, pushes)
        return [Outcome(gone=True, error=f"connection {connection_id} is gone")
                if result is False else Outcome(delivered=True)
                for (connection_id, _, _), result in zip(pushes, pushed, strict=True)]

    async def close(self) -> None:
        await self._http.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._push_threads.shutdown(wait=False, cancel_futures=True)
