"""A worker's memory of its queues, so that most posts skip a read.

Two guesses that ``posting.MessagePoster.post_to_queues`` makes before it
takes any lock, each checked by the statement that follows:

- ``QueueMetadataCache``: (project, queue) -> the metadata its last locking
  read returned. The posts are checked against it and the locking read (or,
  on PostgreSQL, the locked INSERT's ``herald_check``) must find the same
  metadata, or the poster forgets it and starts over.
- ``StageWorkCache``: (project, queue) -> until when (``time.monotonic``) the
  pipeline stages run for its posts, after a post found they had rows to
  write there (a subscriber). Skipping them on every post would fail every
  post once; after ``STAGE_WORK_SECONDS`` one post tries to skip them again,
  so a queue whose subscriptions are gone gets the short path back.

Contract: a wrong guess costs a statement, never a wrong result; so neither
cache is invalidated from elsewhere, and each simply starts over when it
grows past ``KNOWN_METADATA_MAX`` entries (a miss costs one read).
Must not read the database nor decide anything a statement does not check.

Thread-safety: one instance is shared by the worker's executor threads.
Every operation is a single dict operation (atomic under the GIL) or a
sequence of them whose interleaving only loses guesses: ``get`` is used,
never a membership test followed by a lookup, since another thread may
clear the memory in between. No locks, on purpose: they would sit on the
hot path of every post.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

#: Queues a worker remembers (per cache); past this many the memory starts
#: over (a miss costs one read).
KNOWN_METADATA_MAX = 4096

#: Seconds a worker runs the pipeline stages for a queue's posts after its
#: statement found they had rows to write there (see the module docstring).
STAGE_WORK_SECONDS = 60.0

QueueKey = tuple[str, str]


class QueueMetadataCache:
    """(project, queue) -> the metadata its last locking read returned."""

    def __init__(self) -> None:
        self._known: dict[QueueKey, dict[str, Any]] = {}

    def get(self, key: QueueKey) -> dict[str, Any] | None:
        return self._known.get(key)

    def remember(self, found: dict[QueueKey, dict[str, Any]],
                 gone: Iterable[QueueKey] = ()) -> None:
        """Remember ``found``; forget the queues ``gone`` (deleted or changed)."""
        for key in gone:
            self._known.pop(key, None)
        if len(self._known) + len(found) > KNOWN_METADATA_MAX:
            self._known.clear()
        self._known.update(found)


class StageWorkCache:
    """(project, queue) -> until when (monotonic) the stages run for it anyway."""

    def __init__(self) -> None:
        self._until: dict[QueueKey, float] = {}

    def may_write(self, keys: list[QueueKey]) -> bool:
        """Whether the stages recently had rows to write for one of ``keys``."""
        now = time.monotonic()
        return any(self._until.get(key, 0.0) > now for key in keys)

    def remember(self, keys: list[QueueKey]) -> None:
        """The stages had rows to write for ``keys``: run them for a while."""
        if len(self._until) + len(keys) > KNOWN_METADATA_MAX:
            self._until.clear()
        until = time.monotonic() + STAGE_WORK_SECONDS
        self._until.update((key, until) for key in keys)
