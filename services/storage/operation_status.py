"""The health report's ``operation_status``: Zaqar's eight operations, really done and timed.

``GET /v2/health`` (admin) reports, as Zaqar's storage drivers do, whether
the storage can do its job right now by doing it: on a scratch queue of a
throw-away project (``herald-health-<hex>``, which no client can own by
accident and an operator recognises), it creates the queue, posts 100
messages (ttl 600), claims 10 of them (ttl 60, grace 300), lists the
messages, deletes the claimed ones with their claim id, releases the claim,
deletes all the posted ones by id and deletes the queue. Each operation is
``{"succeeded": bool, "seconds": float, "ref": None | str}``: ``ref`` is an
error reference (a UUID) that the worker's log line of the failure carries,
so an operator goes from the report to the traceback.

Each step runs when the step it needs succeeded, as in Zaqar; but where
Zaqar leaves out the steps it skips, every report here has all eight keys
(monitoring scripts read them): a skipped step is ``succeeded: false,
seconds: 0.0`` with the ref of the failure that stopped it. A step that
returns without doing its job (fewer messages posted or claimed than asked)
has failed too. The scratch queue is deleted, with its messages,
claims and claim history, whatever failed before (``delete_queue`` always
runs); a probe never leaves rows behind unless the database itself fails.

Runs on the main database with the controllers the endpoint uses (not
through RPC: the edge already timed the call that asked for the report).
This module only measures: it must not touch any other project's rows.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from herald.storage import history
from herald.storage.claims import ClaimController
from herald.storage.engine import Database
from herald.storage.messages import MessageController
from herald.storage.queues import QueueController

LOG = logging.getLogger(__name__)

#: The operations, in the order they run and are reported (Zaqar's names).
OPERATIONS = ("create_queue", "post_messages", "claim_messages", "list_messages",
              "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue")

#: The prefix of the throw-away projects: nothing else uses it.
SCRATCH_PROJECT_PREFIX = "herald-health-"

# Zaqar's workload: 100 messages of ttl 600; a claim of ttl 60, grace 300,
# of the default 10 messages.
_MESSAGES = 100
_MESSAGE_TTL = 600
_CLAIM_TTL, _CLAIM_GRACE, _CLAIM_LIMIT = 60, 300, 10


class _Run:
    """One probe: runs steps, records each one's outcome under its name."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.status: dict[str, dict[str, Any]] = {}

    def step(self, name: str, action: Callable[[], Any], needs: str | None = None) -> Any:
        """Run ``action`` timed and return its result (None when it failed);
        skipped (with that failure's ref) when the step ``needs`` failed."""
        if needs is not None and not self.status[needs]["succeeded"]:
            self.status[name] = {"succeeded": False, "seconds": 0.0,
                                 "ref": self.status[needs]["ref"]}
            return None
        started = time.monotonic()
        try:
            result = action()
        except Exception:
            ref = str(uuid.uuid4())
            # The ref is the way from the report to this traceback.
            LOG.exception("health: %s failed on the scratch queue of project %s (ref %s)",
                          name, self.project, ref)
            self.status[name] = {"succeeded": False,
                                 "seconds": time.monotonic() - started, "ref": ref}
            return None
        self.status[name] = {"succeeded": True, "seconds": time.monotonic() - started,
                             "ref": None}
        return result


def _expect(found: int, wanted: int, what: str) -> None:
    if found != wanted:
        raise RuntimeError(f"{what}: {found} instead of {wanted}")


def probe(db: Database, queues: QueueController, messages: MessageController,
          claims: ClaimController) -> dict[str, dict[str, Any]]:
    """Run the eight operations on a scratch queue of ``db``; the
    ``operation_status`` mapping, in ``OPERATIONS`` order."""
    project = SCRATCH_PROJECT_PREFIX + uuid.uuid4().hex
    queue = "health-" + uuid.uuid4().hex[:12]
    client = uuid.uuid4().hex
    items = [{"body": {"event": f"p_{i}"}, "ttl": _MESSAGE_TTL} for i in range(_MESSAGES)]
    run = _Run(project)
    posted: list[str] = []
    claimed: dict[str, Any] = {}

    def post() -> None:
        posted.extend(messages.post(project, queue, items,
                                    len(json.dumps({"messages": items})), client))
        _expect(len(posted), _MESSAGES, "messages posted")

    def claim() -> None:
        claimed.update(claims.create(project, queue, _CLAIM_TTL, _CLAIM_GRACE, _CLAIM_LIMIT,
                                     client))
        _expect(len(claimed["messages"]), _CLAIM_LIMIT, "messages claimed")

    def delete_claimed() -> None:
        for message in claimed["messages"]:
            messages.delete(project, queue, message["id"], claimed["claim_id"])

    try:
        # Each step runs when the one it needs succeeded (Zaqar's order and
        # dependencies); the bulk delete cleans up whatever was posted.
        run.step("create_queue", lambda: queues.create(project, queue, None))
        run.step("post_messages", post, needs="create_queue")
        run.step("claim_messages", claim, needs="post_messages")
        run.step("list_messages", lambda: messages.list(
            project, queue, None, _CLAIM_LIMIT, True, True, False, client),
            needs="post_messages")
        run.step("delete_messages", delete_claimed, needs="claim_messages")
        run.step("delete_claim", lambda: claims.delete(project, queue, claimed["claim_id"]),
                 needs="claim_messages")
        run.step("bulk_delete_messages",
                 lambda: messages.delete_many(project, queue, posted, None),
                 needs="post_messages")
    finally:
        # Always, even after a failure above (or an exception ``step`` does
        # not catch, such as a KeyboardInterrupt in a test).
        run.step("delete_queue", lambda: _delete_scratch(db, queues, project, queue))
    return {name: run.status[name] for name in OPERATIONS}


def _delete_scratch(db: Database, queues: QueueController, project: str, queue: str) -> None:
    # The queue with its messages and claims, then the claims' history (kept
    # for real queues until its retention passes: nobody will read this one's).
    queues.delete(project, queue)
    history.forget_queue(db, project, queue)
