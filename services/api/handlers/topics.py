"""Topic resources (rest-v2.md §10): list, create, metadata get/patch, delete,
stats and purge.

A topic is a queue in a namespace of its own: the storage keeps it as a
queue whose project is ``topic_project(project)`` (the project with a
suffix no header can produce by accident, see ``TOPIC_SUFFIX``), so a topic
and a queue of the same name never meet, and everything storage does for
queues (messages, expiry, notifications) works for topics unchanged. On
PostgreSQL the project columns must be wide enough for the suffix.

Tenancy is the queues': a topic, its messages and its subscriptions belong
to the project (the namespace is derived from the caller's project, never
named by the client), and are looked up by (project, topic, id). A topic
created with ``_flavor`` is placed on a flavor of its project
(``herald.storage.pools.tenant_of`` maps the namespace back to the project;
the separator here and there must stay the same).

Differences from queues, as the spec lists them: listings use the key
``topics`` and have no ``with_count``; only ``_max_messages_post_size``,
``_default_message_ttl`` and ``_default_message_delay`` are reserved and
shown with defaults; stats of an existing topic show only ``total`` (and
oldest/newest). Those differences are the ``TOPIC`` resource kind: the
topic collection, topic and purge handlers ARE the queue handlers run with
it (``herald.api.handlers.queues``); only the stats have their own handler.
The optional sub-resources (messages, subscriptions, confirm) are the queue
handlers run on the topic namespace (``TopicNamespace``), their links moved
under ``/v2/topics/``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from herald.api import wire
from herald.api.handlers import queues
from herald.api.handlers.base import BaseHandler
from herald.common.context import RequestContext

#: Appended to the project to make the topic namespace. The unit separator
#: is a control character: no project id a client means to send contains it.
#: It is ``herald.storage.pools.NAMESPACE_SEPARATOR``: a topic uses the
#: flavors of the project before it.
TOPIC_SUFFIX = "\x1ftopics"
RESERVED_KEYS = ("_max_messages_post_size", "_default_message_ttl", "_default_message_delay")


def topic_project(project: str) -> str:
    return f"{project}{TOPIC_SUFFIX}"


def topic_href(topic: str) -> str:
    return f"/v2/topics/{topic}"


TOPIC = queues.ResourceKind("Topic", "topics", RESERVED_KEYS, offers_count=False,
                            namespace=topic_project)


class TopicBase(BaseHandler):
    """Runs the queue pipeline (a topic name obeys the queue name rules, its
    refusal titled for topics) and stores under the topic namespace."""

    RESOURCE_KIND = "topic"
    KIND = TOPIC

    @property
    def topic_ctx(self) -> RequestContext:
        return TOPIC.context(self.ctx)


class TopicCollectionHandler(TopicBase, queues.QueueCollectionHandler):
    pass


class TopicHandler(TopicBase, queues.QueueHandler):
    pass


class TopicPurgeHandler(TopicBase, queues.QueuePurgeHandler):
    pass


class TopicStatsHandler(TopicBase):
    ALLOWED = ("GET",)

    async def get(self, queue_name: str) -> None:
        stats = await self.unavailable_as("Topic stats could not be read.",
                                          self.storage.queue_stats(self.topic_ctx, queue_name))
        exists = bool(stats.get("total")) or await self.unavailable_as(
            "Topic stats could not be read.",
            self.storage.queue_get_metadata(self.topic_ctx, queue_name)) is not None
        if not exists:
            self.reply_json({"messages": {"claimed": 0, "free": 0, "total": 0}})
            return
        shaped = wire.stats_object(queue_name, stats, "topics")["messages"]
        messages: dict[str, Any] = {"total": shaped["total"]}
        messages.update((key, shaped[key]) for key in ("oldest", "newest") if key in shaped)
        self.reply_json({"messages": messages})


def _rewrite_href(value: str, queue_path: str, topic_path: str) -> str:
    if value == queue_path or value.startswith((queue_path + "/", queue_path + "?")):
        return topic_path + value[len(queue_path):]
    return value


def _rewrite(document: Any, queue_path: str, topic_path: str) -> Any:
    """The queue handlers' reply with its hrefs moved to the topic path.

    Only links are touched (``href`` values, the ``resources`` list of a post):
    message bodies are the client's data and are never walked into."""
    if isinstance(document, list):
        return [_rewrite(item, queue_path, topic_path) for item in document]
    if not isinstance(document, dict):
        return document
    rewritten: dict[str, Any] = {}
    for key, value in document.items():
        if key == "href" and isinstance(value, str):
            rewritten[key] = _rewrite_href(value, queue_path, topic_path)
        elif key == "resources" and isinstance(value, list):
            rewritten[key] = [_rewrite_href(v, queue_path, topic_path)
                              if isinstance(v, str) else v for v in value]
        elif key in ("messages", "links", "oldest", "newest"):
            rewritten[key] = _rewrite(value, queue_path, topic_path)
        else:
            rewritten[key] = value
    return rewritten


class TopicNamespace(TopicBase):
    """Mixed in before a queue handler class: the same behaviour on the topic
    (the optional topic sub-resources of rest-v2.md §10)."""

    @property
    def ctx(self) -> RequestContext:
        return self.topic_ctx

    @property
    def topic_ctx(self) -> RequestContext:
        base = super().ctx
        return dataclasses.replace(base, project_id=topic_project(base.project_id))

    def _paths(self) -> tuple[str, str]:
        name = self.path_kwargs.get("queue_name", "")
        return f"/v2/queues/{name}", topic_href(name)

    def reply_json(self, document: Any, status: int = 200,
                   content_type: str = "application/json") -> None:
        super().reply_json(_rewrite(document, *self._paths()), status, content_type)

    def set_header(self, name: str, value: Any) -> None:
        if name == "Location" and isinstance(value, str):
            value = _rewrite_href(value, *self._paths())
        super().set_header(name, value)


def _on_topic(handler: type[BaseHandler]) -> type[BaseHandler]:
    return type(f"Topic{handler.__name__}", (TopicNamespace, handler), {})


def routes(segment: str) -> list[tuple[str, type[BaseHandler]]]:
    """The topic routes, for the application's route table."""
    from herald.api.handlers import messages, subscriptions

    topic = rf"/v2/topics/(?P<queue_name>{segment})"
    sub = rf"{topic}/subscriptions/(?P<subscription_id>{segment})"
    return [
        (r"/v2/topics", TopicCollectionHandler),
        (topic, TopicHandler),
        (rf"{topic}/stats", TopicStatsHandler),
        (rf"{topic}/purge", TopicPurgeHandler),
        (rf"{topic}/messages", _on_topic(messages.MessageCollectionHandler)),
        (rf"{topic}/messages/(?P<message_id>{segment})", _on_topic(messages.MessageHandler)),
        (rf"{topic}/subscriptions", _on_topic(subscriptions.SubscriptionCollectionHandler)),
        (sub, _on_topic(subscriptions.SubscriptionHandler)),
        (rf"{sub}/confirm", _on_topic(subscriptions.SubscriptionConfirmHandler)),
    ]
