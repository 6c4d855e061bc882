"""The message pipeline: stages run inside the transaction of every post.

``[storage] message_pipeline`` names the stages, in order. Each runs once
the post's messages were accepted, in the post's transaction and on its
connection, so whatever it writes commits or rolls back with the messages
(a rolled-back post notifies nobody). The messages' rows are inserted in
the same transaction, before the stages or (posts to several queues, whose
queue locks are taken last) after them: a stage must not read them back.
Stage names map to the built-in factories (``BUILTIN``) or to those the
process added to its ``StorageWiring.stages`` (tests add failing stages
there); ``build(conf, wiring)`` makes the stages of one controller, calling
each factory as ``factory(conf, wiring)``. There is no process-wide
registry. A stage must not commit, open transactions
of its own, or do network I/O: it only writes rows. A stage may also offer
``run_many(conn, batches)`` for the posts to several queues of one
statement set (``run``), to read and write for all of them at once.

A stage may offer ``nothing_to_write_sql()`` too: an SQL condition, over
the posted queues as ``assumed (project, name)``, that is true when the
stage would write nothing for them (the notifier: no subscription).
When every stage offers one, a post on PostgreSQL may skip the stages and
check the conditions in its own statement instead (``guard_sql``), one
round trip for the whole post; if a condition fails, nothing was written
and the post runs the stages.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from oslo_config import cfg
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from herald.storage.wiring import StorageWiring


@dataclasses.dataclass
class PostedBatch:
    """What a stage sees of one post (messages as accepted, defaults applied)."""

    project: str
    queue: str
    metadata: dict[str, Any]
    #: ``{"id", "body", "ttl", "delay"}`` per message, in request order; in a
    #: coalesced batch of posts (``MessageController.post_many``) also the
    #: ``request_id`` (and, tracing, the ``traceparent``) of the post each
    #: message came with.
    messages: list[dict[str, Any]]
    now: float
    request_id: str
    #: The post's span (tracing on; a lone post's: see ``messages``).
    traceparent: str = ""
    #: Outbox rows the stages wrote (the poster wakes the dispatcher when > 0).
    outbox_rows: int = 0
    #: Those of them leased to this process's dispatcher, which the poster
    #: hands over once committed (``outbox_signal.DispatchSignal.hand_over``).
    handed: list[Any] = dataclasses.field(default_factory=list)
    #: Websocket pushes, one per gateway (``herald.storage.broadcasts``),
    #: which the poster hands to the process's sender once committed.
    broadcasts: list[Any] = dataclasses.field(default_factory=list)


class Stage(Protocol):
    def __call__(self, conn: Connection, batch: PostedBatch) -> None: ...


#: ``factory(conf, wiring)``: the process's ``StorageWiring`` gives a stage
#: what it shares with the rest of the worker (the notifier: the outbox signal).
StageFactory = Callable[[cfg.ConfigOpts, "StorageWiring"], Stage]

#: Built-in stages by name -> "module:attribute" (imported when used).
BUILTIN = {"notifier": "herald.storage.notifier:NotifierStage"}


def _factory(name: str, wiring: StorageWiring) -> StageFactory:
    if name in wiring.stages:
        return wiring.stages[name]
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise ValueError(f"unknown message pipeline stage {name!r} in [storage] "
                     f"message_pipeline; known: {sorted({*BUILTIN, *wiring.stages})}")


def run(stages: list[Stage], conn: Connection, batches: list[PostedBatch]) -> None:
    """Every stage over the batches of one statement set, in stage order:
    all batches at once where a stage has ``run_many``, else one by one."""
    if not batches:
        return
    for stage in stages:
        run_many = getattr(stage, "run_many", None)
        if run_many is not None:
            run_many(conn, batches)
        else:
            for batch in batches:
                stage(conn, batch)


def guard_sql(stages: list[Stage]) -> str | None:
    """The SQL condition under which running ``stages`` would write nothing
    (see the module docstring), or None when some stage cannot tell, or
    there is no stage to skip."""
    conditions = []
    for stage in stages:
        nothing_to_write_sql = getattr(stage, "nothing_to_write_sql", None)
        if nothing_to_write_sql is None:
            return None
        conditions.append(f"({nothing_to_write_sql()})")
    return " AND ".join(conditions) or None


def build(conf: cfg.ConfigOpts, wiring: StorageWiring) -> list[Stage]:
    """The stages of ``[storage] message_pipeline``, for one controller."""
    return [_factory(name.strip(), wiring)(conf, wiring)
            for name in conf.storage.message_pipeline if name.strip()]
