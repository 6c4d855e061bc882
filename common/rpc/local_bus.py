"""What the services of one process share without the broker.

``LocalBus`` bundles the per-process objects through which a storage worker
reaches edges running in the same process: the long-poll ``WaiterHub``
(wake-ups) and the ``LocalGateways`` (websocket pushes); and the memory of
bus nonces the process's RPC servers check replays against when
coordination is not Redis (``nonce_store``). It replaces the
module-level singletons these used to be: whoever runs several services in
one process (``herald run``, test harnesses) creates one bus and passes it
to each service's constructor (``local=``); a service given none creates
its own, so two services share these objects only when told to.

This module holds no logic and must not grow any: the objects' behaviour
lives in ``wakeups`` and ``ws_push``. Thread-safety: both members are
thread-safe; the bus itself is immutable once built.
"""

from __future__ import annotations

import dataclasses

from herald.common.rpc.nonce_store import MemoryNonceStore
from herald.common.rpc.wakeups import WaiterHub
from herald.common.rpc.ws_push import LocalGateways


@dataclasses.dataclass(frozen=True)
class LocalBus:
    """The long-poll waiters and the websocket gateways of the services sharing it."""

    waiters: WaiterHub = dataclasses.field(default_factory=WaiterHub)
    gateways: LocalGateways = dataclasses.field(default_factory=LocalGateways)
    nonces: MemoryNonceStore = dataclasses.field(default_factory=MemoryNonceStore)
