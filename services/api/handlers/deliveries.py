"""Delivery history and subscription test-fire (Herald extensions,
docs/api-extensions.md):

* ``GET /v2/queues/{q}/messages/{id}/deliveries``: the message's claims
  (when, by which Client-ID, the how-manieth claim) and its push attempts
  (subscriber, outcome, status, latency). Answers for a message that was
  already deleted as long as its history is kept; 404 when nothing is known.
* ``POST /v2/queues/{q}/subscriptions/{id}/test``: sends one test
  notification now, through the delivery transports, and answers with the
  outcome (200 whether or not the subscriber accepted it: the request
  succeeded, the subscriber's answer is the content).

The storage worker does the work; these handlers only route and shape.
Both are per project: storage looks the message or subscription up by the
caller's (project, queue, id) (``herald.storage.history``,
``herald.storage.testfire``), so another project's id is a 404.
"""

from __future__ import annotations

from herald.api.handlers.base import BaseHandler


class MessageDeliveriesHandler(BaseHandler):
    ALLOWED = ("GET",)

    async def get(self, queue_name: str, message_id: str) -> None:
        found = await self.storage.message_deliveries(self.ctx, queue_name, message_id)
        found["href"] = f"/v2/queues/{queue_name}/messages/{message_id}/deliveries"
        self.reply_json(found)


class SubscriptionTestHandler(BaseHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str, subscription_id: str) -> None:
        outcome = await self.storage.subscription_test(self.ctx, queue_name, subscription_id)
        self.reply_json(outcome)
