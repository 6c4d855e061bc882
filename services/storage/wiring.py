"""The per-process objects a storage worker's controllers reach through their database.

Storage controllers are built as ``Controller(db, conf)`` in many places
(the endpoint, the pool router, the dispatchers, the worker's GC). What
they must announce once a transaction commits, and the pipeline stages a
process adds, used to be module-level singletons; ``StorageWiring`` holds
them instead, and ``Database.wiring`` carries it to every controller:

- ``outbox``: the ``DispatchSignal`` between this process's posts and its
  outbox dispatchers (``herald.storage.outbox_signal``);
- ``wakeups``: the ``WakeupSender`` waking long polls (this process's edges
  at once, the others through the worker's fanout publisher);
- ``broadcasts``: the ``BroadcastSender`` that pushes committed posts to
  their websocket subscribers' gateways (``herald.storage.broadcasts``;
  started by the worker);
- ``recipients``: the ``RecipientCache`` of each database's queues'
  notification recipients, which the notifier stage of every controller of
  the process uses (``herald.storage.recipients``);
- ``warmer``: reads a queue's recipients into that cache again soon after
  this process changed its subscriptions (``herald.storage.recipient_warmer``);
- ``redrive``: set when this process starts a redrive task, so its
  ``RedriveRunner`` looks for work at once;
- ``stages``: pipeline stage factories by name, in addition to the built-in
  ones, for ``[storage] message_pipeline`` (tests add failing stages here).

The worker creates one and passes it to its ``Database``; the pool router
gives every pool database the main database's wiring. A ``Database`` built
without one gets its own, so nothing is shared unless passed. This module
holds no logic. Thread-safety: see each member; ``stages`` is read when a
controller is built, so fill it before.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from herald.common.rpc.wakeups import WakeupSender
from herald.storage.broadcasts import BroadcastSender
from herald.storage.outbox_signal import DispatchSignal
from herald.storage.recipient_warmer import RecipientWarmer
from herald.storage.recipients import RecipientCache

if TYPE_CHECKING:
    from herald.storage.pipeline import StageFactory


@dataclasses.dataclass(frozen=True)
class StorageWiring:
    """What one storage process's controllers share (see the module docstring)."""

    outbox: DispatchSignal = dataclasses.field(default_factory=DispatchSignal)
    wakeups: WakeupSender = dataclasses.field(default_factory=WakeupSender)
    broadcasts: BroadcastSender = dataclasses.field(default_factory=BroadcastSender)
    stages: dict[str, StageFactory] = dataclasses.field(default_factory=dict)
    recipients: RecipientCache = dataclasses.field(default_factory=RecipientCache)
    warmer: RecipientWarmer = dataclasses.field(default_factory=RecipientWarmer)
    redrive: threading.Event = dataclasses.field(default_factory=threading.Event)
