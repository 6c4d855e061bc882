"""Posting messages: the single, idempotent, batch and multi-queue post paths.

A post is one INSERT of all its rows, in the same transaction as the lazy
queue creation, the pipeline stages (``[storage] message_pipeline``: the
notifier writes outbox rows) and the record of an idempotency key
(``idempotency``). Positions (``seq``) come from the database and must
commit in the order they were drawn, per queue, so a poster holds its
queue row locked (``base.queue_metadata``) from the INSERT until it commits,
and takes that lock as late as it can: last in a lone or coalesced post,
and on PostgreSQL inside the INSERT itself (``locked_insert``).

The paths, all answering ``MessageController``'s post operations:

- ``post``: one post. Without an idempotency key it is a one-group
  ``post_to_queues``, falling back to the lock-first ``_post`` (which
  creates a missing queue and re-checks a post whose queue changed); with a
  key it is ``_post``, retried once if a concurrent duplicate won the race.
  An edge's re-send of a post (``attempt`` > 1) is an idempotent post under
  its operation key, which every first send records (``idempotency``).
- ``post_many``: a coalesced batch's posts to ONE queue, lock first, one
  INSERT; a refused post never fails the others.
- ``post_to_queues``: a coalesced batch's posts to one or more existing
  queues, checked against remembered metadata (``post_caches``) and locked
  last.

Once committed, the poster wakes this process's outbox dispatcher and the
long polls of the queue (``_signal_committed``), through the worker's
per-process objects that its database carries (``Database.wiring``).

Contract: the SQL statements and their number per path are the hot paths'
budget (tests/contract/test_statement_counts.py): a change here must keep
them. The rows themselves and the metadata checks are ``post_rows``'s.
Must not create claims (``claims``), deliver notifications (the outbox
dispatcher does), or validate what the edge validates.

Thread-safety: one ``MessagePoster`` per database, shared by the worker's
executor threads; it holds no per-call state. Its caches are
``post_caches``'s (lock-free guesses, each checked by a statement).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from herald.common import errors, metrics
from herald.storage import base, clock, idempotency, locked_insert, pipeline, post_rows
from herald.storage.engine import Database, StatementCheckFailed
from herald.storage.post_caches import QueueMetadataCache, StageWorkCache
from herald.storage.schema import messages


class _AllRefused(Exception):
    """Rolls back the write of a group of posts that were all refused."""


class MessagePoster:
    """Every way messages are posted to a database's queues."""

    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 stages: list[pipeline.Stage]) -> None:
        self._db = db
        self._conf = conf
        self._stages = stages
        #: Only a guess: every use is checked by the next locking read.
        self._known_metadata = QueueMetadataCache()
        #: What the stages must not have to write when a post skips them
        #: (None: never skipped), and for which queues they run anyway.
        self._stage_guard = pipeline.guard_sql(self._stages) if db.is_postgres else None
        self._stage_work = StageWorkCache()

    def post(self, project: str, queue: str, items: list[dict[str, Any]], body_size: int,
             client_id: str, request_id: str = "-",
             idempotency_key: str | None = None, traceparent: str = "",
             operation_id: str = "", attempt: int = 1) -> list[str]:
        """``traceparent``: the post's span, kept by its outbox rows (tracing)."""
        operation_key = idempotency.operation_key(operation_id)
        if idempotency_key is None and operation_key is not None and attempt > 1:
            # A re-send: the first send may have committed (its worker died
            # before answering, or answers late).
            idempotency_key = operation_key
        if idempotency_key is None:
            # A lone post takes the queue lock last, like a batch's posts: at
            # a few hundred posts/s to one queue most posts travel alone, and
            # holding the lock across the checks and the pipeline stages made
            # the other worker's posts wait on it (issue 5, push latency).
            # The lock-first path creates a missing queue and re-checks a post
            # whose queue changed meanwhile.
            post = post_rows.post_request(items, body_size, client_id, request_id,
                                          traceparent, operation_key)
            try:
                lock_last = self.post_to_queues([(project, queue, [post])])
            except sa_exc.IntegrityError:
                # A re-send of this very post committed first: its ids.
                lock_last = None
            if lock_last is not None:
                outcome = lock_last[0][0]
                if isinstance(outcome, errors.HeraldError):
                    raise outcome
                return outcome
            if operation_key is None:
                return self._post(project, queue, items, body_size, client_id, request_id,
                                  None, traceparent)
            # The lock-first path records the operation key as any key.
            idempotency_key = operation_key
        try:
            return self._post(project, queue, items, body_size, client_id, request_id,
                              idempotency_key, traceparent)
        except sa_exc.IntegrityError:
            # A concurrent post with the same key committed first (see
            # ``idempotency``); this one rolled back: now it finds that row.
            return self._post(project, queue, items, body_size, client_id, request_id,
                              idempotency_key, traceparent)

    def _post(self, project: str, queue: str, items: list[dict[str, Any]], body_size: int,
              client_id: str, request_id: str, idempotency_key: str | None,
              traceparent: str = "") -> list[str]:
        now = clock.now()
        client = base.normalize_client_id(client_id)
        with_checksum = self._conf.enable_checksum
        with self._db.write() as conn:
            metadata = base.locked_queue_metadata(conn, project, queue, now)
            post_rows.check_size(self._conf, metadata, body_size or 0)
            if idempotency_key is not None:
                # After the queue lock: a duplicate that committed first is seen.
                print_ = idempotency.print_of(idempotency_key, items)
                replayed = idempotency.lookup(conn, project, queue, idempotency_key, print_,
                                              now)
                if replayed is not None:
                    return replayed
            rows, accepted = post_rows.rows_of(self._conf, project, queue, metadata, items,
                                               client, now, with_checksum)
            if rows:
                base.mark_grouped(conn, rows)
                # One statement for the whole batch; rows get consecutive
                # positions in list order, inside the queue lock above.
                conn.execute(sa.insert(messages), rows)
            batch = pipeline.PostedBatch(project=project, queue=queue, metadata=metadata,
                                         messages=accepted, now=now, request_id=request_id,
                                         traceparent=traceparent)
            if rows:
                pipeline.run(self._stages, conn, [batch])
            if idempotency_key is not None:
                idempotency.remember(conn, project, queue, idempotency_key, print_,
                                     [row["id"] for row in rows], now,
                                     idempotency.window_of(
                                         idempotency_key, self._conf.storage.idempotency_window))
        self._signal_committed(project, queue, bool(rows), batch)
        return [row["id"] for row in rows]

    def _signal_committed(self, project: str, queue: str, posted: bool,
                          batch: pipeline.PostedBatch | None) -> None:
        """Once the post is committed (at the end of a coalesced batch's shared
        transaction, or now): its websocket broadcasts go to the sender,
        in commit order (``herald.storage.broadcasts``); this process's
        dispatcher delivers its outbox rows now rather than at the queue
        owner's next poll (push latency) -- handed over if they were leased
        to it, else signalled -- and long polls on the queue, on any edge,
        try again."""
        if batch is not None and batch.handed:
            self._db.after_commit(functools.partial(self._db.wiring.outbox.hand_over,
                                                    self._db.engine, batch.handed))
        if batch is not None and batch.outbox_rows > len(batch.handed):
            self._db.after_commit(functools.partial(self._db.wiring.outbox.set, project, queue))
        if batch is not None and batch.broadcasts:
            for broadcast in batch.broadcasts:
                broadcast.db = self._db  # a dead gateway's subscriptions are deleted here
            self._db.after_commit(functools.partial(self._db.wiring.broadcasts.send,
                                                    batch.broadcasts))
        if posted:
            self._db.after_commit(functools.partial(self._db.wiring.wakeups.messages_available,
                                                    project, queue))
            if batch is not None:
                metrics.after_commit(self._db, metrics.MESSAGES_POSTED, len(batch.messages))

    def post_many(self, project: str, queue: str,
                  posts: list[dict[str, Any]]) -> list[list[str] | errors.HeraldError]:
        """Several posts to ONE queue (a coalesced batch's), as one INSERT.

        ``posts``: ``{"messages", "body_size", "client_id", "request_id"}``
        each (no idempotency keys: those posts go through ``post``). One
        queue lock, one INSERT of every accepted row (each post's rows stay
        consecutive, in post order), one pass of the pipeline stages with
        each message carrying its own post's request id. Returns, per post,
        its message ids or the typed error that refused it (a refused post
        never fails the others); a database error fails them all.
        """
        now = clock.now()
        with_checksum = self._conf.enable_checksum
        outcomes: list[list[str] | errors.HeraldError] = []
        all_rows: list[dict[str, Any]] = []
        all_accepted: list[dict[str, Any]] = []
        try:
            batch = self._post_many(project, queue, posts, now, with_checksum,
                                    outcomes, all_rows, all_accepted)
        except _AllRefused:
            return outcomes  # the SAVEPOINT took the lazy queue creation back
        self._signal_committed(project, queue, bool(all_rows), batch)
        return outcomes

    def _post_many(self, project: str, queue: str, posts: list[dict[str, Any]], now: float,
                   with_checksum: bool, outcomes: list[list[str] | errors.HeraldError],
                   all_rows: list[dict[str, Any]], all_accepted: list[dict[str, Any]]
                   ) -> pipeline.PostedBatch | None:
        batch = None
        with self._db.write() as conn:
            metadata = base.locked_queue_metadata(conn, project, queue, now)
            key_rows: list[dict[str, Any]] = []
            rows, accepted = self._accept(project, queue, metadata, posts, now,
                                          with_checksum, outcomes, key_rows)
            all_rows.extend(rows)
            all_accepted.extend(accepted)
            if all_rows:
                base.mark_grouped(conn, all_rows)
                idempotency.remember_operations(conn, key_rows)
                conn.execute(sa.insert(messages), all_rows)
                batch = pipeline.PostedBatch(
                    project=project, queue=queue, metadata=metadata, messages=all_accepted,
                    now=now, request_id=str(posts[0].get("request_id") or "-"))
                pipeline.run(self._stages, conn, [batch])
            elif outcomes and all(isinstance(o, errors.HeraldError) for o in outcomes):
                # Like a lone refused post: nothing stays, not even the queue.
                raise _AllRefused
        return batch

    def post_to_queues(self, groups: list[tuple[str, str, list[dict[str, Any]]]]
                       ) -> list[list[list[str] | errors.HeraldError]] | None:
        """Posts of a coalesced batch to one or more queues, each group one
        queue with ``post_many``'s posts, in one statement set. The outcomes
        are ``post_many``'s, per group.

        The queue locks (see ``base.queue_metadata``) serialize every poster
        of those queues, on every worker, until this transaction commits, so
        they are taken last. The posts are checked against the metadata the
        previous locking read of each queue returned (read unlocked the first
        time), the pipeline stages write their rows (one subscriber read for
        all queues), then the queue rows are locked, their metadata must be
        what the posts were checked against, and one INSERT allocates the
        positions of every accepted message. Holding the locks across the
        checks and the stages made the other worker's batches wait out
        ~10 ms of this one's work. On PostgreSQL the lock, the check and the
        INSERT are one statement, sent with the COMMIT when this write ends
        the transaction (``locked_insert``); on SQLite, whose writers are
        serialized from BEGIN, the metadata is read again and compared.
        On PostgreSQL, in a write of its own (not a batch's shared
        transaction), the stages are skipped, and their guard checked by
        that statement, unless they recently had rows to write for one of
        the queues: a post with remembered metadata to queues without
        subscribers is then that one statement. When the guard does not
        hold, that statement inserts nothing (``locked_insert``), and the
        post starts over with the stages. After other writes of a batch's
        shared transaction it then does not carry the COMMIT, which would
        commit those writes without these posts.

        None, with nothing written, when a queue does not exist (the
        per-queue path creates it lazily and takes the creation back if every
        post to it is refused, which one shared statement set cannot), or
        when a queue's metadata was not what the posts were checked against
        (the per-queue path then checks them again, under the lock), or when
        skipped stages had rows to write after all."""
        now = clock.now()
        with_checksum = self._conf.enable_checksum
        keys = [(project, queue) for project, queue, _ in groups]
        guard = None if self._stage_work.may_write(keys) else self._stage_guard
        per_group: list[list[list[str] | errors.HeraldError]] = []
        batches: list[pipeline.PostedBatch] = []
        try:
            with self._db.write() as conn:
                assumed = self._assumed_metadata(conn, keys)
                if assumed is None:
                    # A queue is missing, nothing written. Left without an
                    # exception: in a batch's transaction without savepoints
                    # a write that raises takes the whole batch back.
                    return None
                all_rows: list[dict[str, Any]] = []
                key_rows: list[dict[str, Any]] = []
                for project, queue, posts in groups:
                    outcomes: list[list[str] | errors.HeraldError] = []
                    rows, accepted = self._accept(project, queue, assumed[(project, queue)],
                                                  posts, now, with_checksum, outcomes,
                                                  key_rows)
                    per_group.append(outcomes)
                    if rows:
                        all_rows.extend(rows)
                        batches.append(pipeline.PostedBatch(
                            project=project, queue=queue, metadata=assumed[(project, queue)],
                            messages=accepted, now=now,
                            request_id=str(posts[0].get("request_id") or "-")))
                if guard is None:
                    pipeline.run(self._stages, conn, batches)
                # Before the locked INSERT (PostgreSQL: the transaction's
                # last statement): flags a queue's first grouped post, and
                # records the posts' operation keys.
                base.mark_grouped(conn, all_rows)
                idempotency.remember_operations(conn, key_rows)
                if all_rows and self._db.is_postgres:
                    # Lock, check and INSERT in one statement.
                    statement = locked_insert.statement(assumed, all_rows, guard)
                    # Not with the COMMIT of a transaction that wrote before
                    # when inserting nothing is possible: it would commit the
                    # batch's other writes, or these posts' operation keys,
                    # without these posts (the start-over would then find the
                    # keys and answer ids of messages never stored).
                    commit = guard is None or (self._db.first_write() and not key_rows)
                    try:
                        inserted = self._db.execute_last(conn, *statement, commit=commit)
                    except StatementCheckFailed:
                        self._known_metadata.remember({}, gone=keys)
                        raise _AllRefused from None  # start over
                    if inserted < len(all_rows):  # the skipped stages had work
                        self._stage_work.remember(keys)
                        raise _AllRefused  # start over, with the stages
                else:
                    # Also when everything was refused: a refusal must be by
                    # the queue's real metadata.
                    locked = base.queues_metadata(conn, keys, lock=True)
                    self._known_metadata.remember(locked, gone=set(keys) - locked.keys())
                    if locked != assumed:
                        raise _AllRefused  # changed or deleted meanwhile: start over
                    if all_rows:
                        conn.execute(sa.insert(messages), all_rows)
        except _AllRefused:
            return None
        for batch in batches:
            self._signal_committed(batch.project, batch.queue, True, batch)
        return per_group

    def _assumed_metadata(self, conn: Connection, keys: list[tuple[str, str]]
                          ) -> dict[tuple[str, str], dict[str, Any]] | None:
        """What the queues' metadata is taken to be until they are locked:
        remembered, else read (unlocked). None if a queue is missing."""
        wanted = set(keys)
        # get(), not a membership test and a lookup: another thread may
        # clear the memory in between.
        known = {key: self._known_metadata.get(key) for key in wanted}
        assumed = {key: metadata for key, metadata in known.items() if metadata is not None}
        if len(assumed) < len(wanted):
            read = base.queues_metadata(conn, [key for key in wanted if key not in assumed])
            self._known_metadata.remember(read)
            assumed.update(read)
        if len(assumed) < len(wanted):
            return None
        return assumed

    def _accept(self, project: str, queue: str, metadata: dict[str, Any],
                posts: list[dict[str, Any]], now: float, with_checksum: bool,
                outcomes: list[list[str] | errors.HeraldError],
                key_rows: list[dict[str, Any]],
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rows of the posts to one queue that pass its checks, in post
        order; each post's outcome (its ids or its refusal) in ``outcomes``,
        and the operation key row of each accepted post that has one in
        ``key_rows``."""
        all_rows: list[dict[str, Any]] = []
        all_accepted: list[dict[str, Any]] = []
        for post in posts:
            try:
                post_rows.check_size(self._conf, metadata, post.get("body_size") or 0)
                rows, accepted = post_rows.rows_of(
                    self._conf, project, queue, metadata, post["messages"],
                    base.normalize_client_id(post.get("client_id")), now, with_checksum)
            except errors.HeraldError as exc:
                outcomes.append(exc)
                continue
            traceparent = post.get("traceparent")
            for message in accepted:
                message["request_id"] = post.get("request_id") or "-"
                if traceparent:
                    message["traceparent"] = traceparent
            outcomes.append([row["id"] for row in rows])
            if post.get("operation_key"):
                key_rows.append(idempotency.operation_rows(
                    project, queue, post["operation_key"], outcomes[-1], now))
            all_rows.extend(rows)
            all_accepted.extend(accepted)
        return all_rows, all_accepted

