"""tooz coordination shared by the services: member ids and coordinators.

Each Herald process has a unique member id (``host.pid.uuid``) and joins a
group of its kind (``herald.storage``, ``herald.ws``). The database, not
tooz, decides correctness: tooz only spreads background work and serializes
one-per-cluster jobs such as schema migration.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from oslo_config import cfg
from tooz import coordination

STORAGE_GROUP = "herald.storage"
WS_GROUP = "herald.ws"


def new_member_id() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def backend_url(conf: cfg.ConfigOpts) -> str:
    url = conf.coordination.backend_url
    if url.startswith("file://"):
        # file:// paths are relative to the working directory, like the SQLite file.
        path = url[len("file://"):]
        os.makedirs(path, exist_ok=True)
    return url


def start_coordinator(conf: cfg.ConfigOpts, member_id: str) -> coordination.CoordinationDriver:
    """A started tooz coordinator with its heartbeat thread running."""
    coordinator = coordination.get_coordinator(backend_url(conf), member_id.encode())
    coordinator.start(start_heart=True)
    return coordinator


def ensure_member(coordinator: coordination.CoordinationDriver, group: str,
                  member_id: str, capabilities: Any = b"") -> bool:
    """Join ``group`` again if this member was dropped from it; True if it was.

    A member whose heartbeat lapses (the backend stalled longer than the
    membership timeout) is deleted from the group by the next peer that
    lists it; tooz never adds it back, and the member would stay out of the
    partition ring for good, doing no background work. Call periodically;
    ``capabilities`` as when it first joined (a partitioned group's weight).
    """
    group_id = group.encode()
    members = coordinator.get_members(group_id).get()
    if member_id.encode() in members:
        return False
    try:
        coordinator.join_group(group_id, capabilities).get()
    except coordination.MemberAlreadyExist:
        return False
    except coordination.GroupNotCreated:
        coordinator.join_group_create(group_id, capabilities)
    return True

