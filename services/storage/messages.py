"""Message controller: post, list, get, delete, pop (semantics.md §3, §6, §11).

Everything a message read returns is filtered by expiry in SQL at the time
of the call, so an expired message is invisible at once, whatever the
garbage collector has done. Positions (``seq``) come from the database; a
post is one INSERT of all its rows in the same transaction as the lazy queue
creation. Validation here is only what needs the queue's metadata (post size
cap, delays); everything else is checked by the edge before the call.
The message pipeline's stages (``[storage] message_pipeline``: the notifier
writes outbox rows) run after the insert in the same transaction, and so
does the record of an idempotency key (``idempotency``).
Must not create claims (see ``claims``) nor deliver notifications.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from herald.common import errors, ids
from herald.common.rpc import serializer, wakeups
from herald.storage import base, clock, idempotency, locked_insert, outbox, pipeline
from herald.storage.engine import Database, StatementCheckFailed
from herald.storage.schema import messages


def checksum(body: Any) -> str | None:
    """``MD5:<hex>`` of ``json.dumps(body)`` (default separators); None for a null body."""
    if body is None:
        return None
    text = json.dumps(serializer.encode(body))
    return "MD5:" + hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_marker(marker: str | None) -> int | None:
    """The position a marker names; -1 for one that cannot be interpreted."""
    if marker is None or marker == "":
        return None
    if not marker.isdigit() or not marker.isascii() or len(marker) > 19:
        return -1
    return int(marker)


class _AllRefused(Exception):
    """Rolls back the write of a group of posts that were all refused."""


@functools.cache
def _list_statement(after_marker: bool, include_claimed: bool, include_delayed: bool,
                    hide_client: bool) -> sa.Select[Any]:
    """The listing statement of one shape (16 in all), built once; its values
    are bound at execution: ``project``, ``queue``, ``now``, ``limit``, and
    ``marker`` and ``client`` where the shape has them. Built per call (with
    SQLAlchemy computing its cache key each time) it was a third of a list's
    CPU on the worker."""
    project, queue = sa.bindparam("project"), sa.bindparam("queue")
    now = sa.bindparam("now")
    stmt = (sa.select(*base.MESSAGE_COLUMNS)
            .where(base.in_queue(project, queue), base.live(now))
            .order_by(messages.c.seq)
            .limit(sa.bindparam("limit")))
    if after_marker:
        stmt = stmt.where(messages.c.seq > sa.bindparam("marker"))
    else:
        stmt = stmt.where(base.from_queue_start(project, queue))
    if not include_claimed:
        stmt = stmt.where(base.unclaimed(now))
    if not include_delayed:
        stmt = stmt.where(base.visible(now))
    if hide_client:
        stmt = stmt.where(messages.c.client_id != sa.bindparam("client"))
    return stmt


@functools.cache
def _delete_statement() -> sa.Delete:
    """``MessageController.delete``'s conditional DELETE of message ``b_id``,
    built once: given a claim id (``b_claim``), only under that claim; with
    ``b_claim`` None, only an unclaimed message. One statement for both, so
    that ``delete_each``'s executemany can mix them."""
    project, queue, now = sa.bindparam("b_project"), sa.bindparam("b_queue"), sa.bindparam("b_now")
    claim = sa.bindparam("b_claim")
    return (sa.delete(messages)
            .where(base.in_queue(project, queue), base.live(now),
                   messages.c.id == sa.bindparam("b_id"),
                   sa.or_(messages.c.claim_id == claim,
                          sa.and_(claim.is_(None), base.unclaimed(now)))))


#: Queues whose metadata a worker remembers for ``post_to_queues``; past
#: this many the memory starts over (a miss costs one read).
KNOWN_METADATA_MAX = 4096

#: Seconds a worker runs the pipeline stages for a queue's posts after its
#: statement found they had rows to write there (a subscriber): trying to
#: skip them on every post would fail every post once. Afterwards one post
#: tries again, so a queue whose subscriptions are gone gets the short path
#: back.
STAGE_WORK_SECONDS = 60.0


def post_request(messages: list[dict[str, Any]], body_size: int, client_id: str | None,
                 request_id: str | None) -> dict[str, Any]:
    """One post as ``post_many`` and ``post_to_queues`` take it."""
    return {"messages": messages, "body_size": body_size, "client_id": client_id,
            "request_id": request_id}


class MessageController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 stages: list[pipeline.Stage] | None = None) -> None:
        self._db = db
        self._conf = conf
        self._stages = pipeline.build(conf) if stages is None else stages
        #: (project, queue) -> the metadata its last locking read returned.
        #: Only a guess: every use is checked by the next locking read.
        self._known_metadata: dict[tuple[str, str], dict[str, Any]] = {}
        #: What the stages must not have to write when a post skips them
        #: (None: never skipped), and (project, queue) -> until when
        #: (monotonic) they run for it anyway (``STAGE_WORK_SECONDS``).
        self._stage_guard = pipeline.guard_sql(self._stages) if db.is_postgres else None
        self._stage_work_until: dict[tuple[str, str], float] = {}

    # -- posting ----------------------------------------------------------

    def _check_size(self, metadata: dict[str, Any], body_size: int) -> None:
        limit = self._conf.limits.max_messages_post_size
        queue_limit = metadata.get("_max_messages_post_size")
        if queue_limit and isinstance(queue_limit, int) and not isinstance(queue_limit, bool):
            effective = min(queue_limit, limit)
            if body_size > effective:
                raise errors.BadRequest(
                    "Message collection size is too large. The max size for current "
                    f"queue is {effective}. It is calculated by max size = "
                    f"min(max_messages_post_size_config: {limit}, "
                    f"max_messages_post_size_queue: {queue_limit})."
                )
        if body_size > limit:
            raise errors.BadRequest(f"Message collection size is too large. Max size {limit}")

    def _delay(self, message: dict[str, Any], queue_delay: Any) -> int:
        # Quirk kept (semantics.md §6): a per-message delay only counts on a
        # queue with a truthy _default_message_delay.
        if not queue_delay:
            return 0
        delay = message.get("delay")
        if delay is None:
            delay = queue_delay
        if not isinstance(delay, int):
            raise errors.InvalidBody('The value of the "delay" field must be a int.')
        maximum = self._conf.limits.max_message_delay
        if not 0 <= int(delay) <= maximum:
            raise errors.BadRequest(
                f"The Delay TTL for a message may not exceed {maximum} seconds, "
                "and must be at least 0 seconds long."
            )
        return int(delay)

    def post(self, project: str, queue: str, items: list[dict[str, Any]], body_size: int,
             client_id: str, request_id: str = "-",
             idempotency_key: str | None = None) -> list[str]:
        if idempotency_key is None:
            # A lone post takes the queue lock last, like a batch's posts: at
            # a few hundred posts/s to one queue most posts travel alone, and
            # holding the lock across the checks and the pipeline stages made
            # the other worker's posts wait on it (issue 5, push latency).
            # The lock-first path creates a missing queue and re-checks a post
            # whose queue changed meanwhile.
            post = post_request(items, body_size, client_id, request_id)
            lock_last = self.post_to_queues([(project, queue, [post])])
            if lock_last is not None:
                outcome = lock_last[0][0]
                if isinstance(outcome, errors.HeraldError):
                    raise outcome
                return outcome
            return self._post(project, queue, items, body_size, client_id, request_id, None)
        try:
            return self._post(project, queue, items, body_size, client_id, request_id,
                              idempotency_key)
        except sa_exc.IntegrityError:
            # A concurrent post with the same key committed first (see
            # ``idempotency``); this one rolled back: now it finds that row.
            return self._post(project, queue, items, body_size, client_id, request_id,
                              idempotency_key)

    def _post(self, project: str, queue: str, items: list[dict[str, Any]], body_size: int,
              client_id: str, request_id: str, idempotency_key: str | None) -> list[str]:
        now = clock.now()
        client = base.normalize_client_id(client_id)
        with_checksum = self._conf.enable_checksum
        with self._db.write() as conn:
            metadata = base.locked_queue_metadata(conn, project, queue, now)
            self._check_size(metadata, body_size or 0)
            if idempotency_key is not None:
                # After the queue lock: a duplicate that committed first is seen.
                print_ = idempotency.fingerprint(items)
                replayed = idempotency.lookup(conn, project, queue, idempotency_key, print_,
                                              now)
                if replayed is not None:
                    return replayed
            rows, accepted = self._rows(project, queue, metadata, items, client, now,
                                        with_checksum)
            if rows:
                # One statement for the whole batch; rows get consecutive
                # positions in list order, inside the queue lock above.
                conn.execute(sa.insert(messages), rows)
            batch = pipeline.PostedBatch(project=project, queue=queue, metadata=metadata,
                                         messages=accepted, now=now, request_id=request_id)
            if rows:
                pipeline.run(self._stages, conn, [batch])
            if idempotency_key is not None:
                idempotency.remember(conn, project, queue, idempotency_key, print_,
                                     [row["id"] for row in rows], now,
                                     self._conf.storage.idempotency_window)
        self._signal_committed(project, queue, bool(rows), batch)
        return [row["id"] for row in rows]

    def _signal_committed(self, project: str, queue: str, posted: bool,
                          batch: pipeline.PostedBatch | None) -> None:
        """Once the post is committed (at the end of a coalesced batch's shared
        transaction, or now): this process's dispatcher delivers its outbox
        rows now rather than at the queue owner's next poll (push latency) --
        handed over if they were leased to it, else signalled -- and long
        polls on the queue, on any edge, try again."""
        if batch is not None and batch.handed:
            self._db.after_commit(functools.partial(outbox.SIGNAL.hand_over, self._db.engine,
                                                    batch.handed))
        if batch is not None and batch.outbox_rows > len(batch.handed):
            self._db.after_commit(functools.partial(outbox.SIGNAL.set, project, queue))
        if posted:
            self._db.after_commit(functools.partial(wakeups.messages_available,
                                                    project, queue))

    def _rows(self, project: str, queue: str, metadata: dict[str, Any],
              items: list[dict[str, Any]], client: str, now: float,
              with_checksum: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The ``messages`` rows of one post and what the pipeline sees of them."""
        queue_ttl = metadata.get("_default_message_ttl")
        default_ttl = (queue_ttl if queue_ttl and isinstance(queue_ttl, int)
                       else self._conf.limits.default_message_ttl)
        queue_delay = metadata.get("_default_message_delay")
        rows = []
        accepted = []
        for item in items:
            body = item.get("body")
            ttl = item.get("ttl")
            ttl = default_ttl if ttl is None else int(ttl)
            delay = self._delay(item, queue_delay)
            rows.append({
                "id": ids.new_id(),
                "project": project,
                "queue": queue,
                "body": base.dump_body(body),
                "ttl": ttl,
                "created": now,
                "expires": now + ttl,
                "visible_at": now + delay,
                "client_id": client,
                "claim_id": None,
                "claim_expires": None,
                "claim_count": 0,
                "checksum": checksum(body) if with_checksum else None,
            })
            accepted.append({"id": rows[-1]["id"], "body": body, "ttl": ttl, "delay": delay})
        return rows, accepted

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
            rows, accepted = self._accept(project, queue, metadata, posts, now,
                                          with_checksum, outcomes)
            all_rows.extend(rows)
            all_accepted.extend(accepted)
            if all_rows:
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
        On PostgreSQL the stages are skipped, and their guard checked by
        that statement, unless they recently had rows to write for one of
        the queues: a post with remembered metadata to queues without
        subscribers is then that one statement.

        None, with nothing written, when a queue does not exist (the
        per-queue path creates it lazily and takes the creation back if every
        post to it is refused, which one shared statement set cannot), or
        when a queue's metadata was not what the posts were checked against
        (the per-queue path then checks them again, under the lock), or when
        skipped stages had rows to write after all."""
        now = clock.now()
        with_checksum = self._conf.enable_checksum
        keys = [(project, queue) for project, queue, _ in groups]
        guard = None if self._stages_may_write(keys) else self._stage_guard
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
                for project, queue, posts in groups:
                    outcomes: list[list[str] | errors.HeraldError] = []
                    rows, accepted = self._accept(project, queue, assumed[(project, queue)],
                                                  posts, now, with_checksum, outcomes)
                    per_group.append(outcomes)
                    if rows:
                        all_rows.extend(rows)
                        batches.append(pipeline.PostedBatch(
                            project=project, queue=queue, metadata=assumed[(project, queue)],
                            messages=accepted, now=now,
                            request_id=str(posts[0].get("request_id") or "-")))
                if guard is None:
                    pipeline.run(self._stages, conn, batches)
                if all_rows and self._db.is_postgres:
                    # Lock, check and INSERT in one statement, with the
                    # COMMIT when this write ends the transaction.
                    try:
                        self._db.execute_last(conn, *locked_insert.statement(
                            assumed, all_rows, guard))
                    except StatementCheckFailed as exc:
                        if locked_insert.STAGES_HAVE_WORK in str(exc):
                            self._remember_stage_work(keys)
                        else:
                            self._remember_metadata({}, gone=keys)
                        raise _AllRefused from None  # start over
                else:
                    # Also when everything was refused: a refusal must be by
                    # the queue's real metadata.
                    locked = base.queues_metadata(conn, keys, lock=True)
                    self._remember_metadata(locked, gone=set(keys) - locked.keys())
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
            self._remember_metadata(read)
            assumed.update(read)
        if len(assumed) < len(wanted):
            return None
        return assumed

    def _stages_may_write(self, keys: list[tuple[str, str]]) -> bool:
        now = time.monotonic()
        return any(self._stage_work_until.get(key, 0.0) > now for key in keys)

    def _remember_stage_work(self, keys: list[tuple[str, str]]) -> None:
        if len(self._stage_work_until) + len(keys) > KNOWN_METADATA_MAX:
            self._stage_work_until.clear()
        until = time.monotonic() + STAGE_WORK_SECONDS
        self._stage_work_until.update((key, until) for key in keys)

    def _remember_metadata(self, found: dict[tuple[str, str], dict[str, Any]],
                           gone: Iterable[tuple[str, str]] = ()) -> None:
        for key in gone:
            self._known_metadata.pop(key, None)
        if len(self._known_metadata) + len(found) > KNOWN_METADATA_MAX:
            self._known_metadata.clear()
        self._known_metadata.update(found)

    def _accept(self, project: str, queue: str, metadata: dict[str, Any],
                posts: list[dict[str, Any]], now: float, with_checksum: bool,
                outcomes: list[list[str] | errors.HeraldError],
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rows of the posts to one queue that pass its checks, in post
        order; each post's outcome (its ids or its refusal) in ``outcomes``."""
        all_rows: list[dict[str, Any]] = []
        all_accepted: list[dict[str, Any]] = []
        for post in posts:
            try:
                self._check_size(metadata, post.get("body_size") or 0)
                rows, accepted = self._rows(
                    project, queue, metadata, post["messages"],
                    base.normalize_client_id(post.get("client_id")), now, with_checksum)
            except errors.HeraldError as exc:
                outcomes.append(exc)
                continue
            for message in accepted:
                message["request_id"] = post.get("request_id") or "-"
            outcomes.append([row["id"] for row in rows])
            all_rows.extend(rows)
            all_accepted.extend(accepted)
        return all_rows, all_accepted

    # -- reading ----------------------------------------------------------

    def list(self, project: str, queue: str, marker: str | None, limit: int, echo: bool,
             include_claimed: bool, include_delayed: bool, client_id: str) -> dict[str, Any]:
        position = parse_marker(marker)
        if position == -1:
            return {"messages": [], "marker": None}
        now = clock.now()
        client = base.normalize_client_id(client_id)
        hide_client = bool(not echo and client)
        params: dict[str, Any] = {"project": project, "queue": queue, "now": now,
                                  "limit": limit}
        if position is not None:
            params["marker"] = position
        if hide_client:
            params["client"] = client
        stmt = _list_statement(position is not None, bool(include_claimed),
                               bool(include_delayed), hide_client)
        with self._db.read() as conn:
            rows = conn.execute(stmt, params).all()
        return {"messages": [base.stored_message(row, now) for row in rows],
                "marker": str(rows[-1].seq) if rows else None}

    def get(self, project: str, queue: str, message_id: str) -> dict[str, Any]:
        found = self.get_many(project, queue, [message_id])
        if not found:
            raise errors.MessageDoesNotExist.of(message_id, queue, project)
        return found[0]

    def get_many(self, project: str, queue: str, message_ids: list[str]) -> list[dict[str, Any]]:
        wanted = [mid for mid in dict.fromkeys(message_ids or []) if ids.is_valid_id(mid)]
        if not wanted:
            return []
        now = clock.now()
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*base.MESSAGE_COLUMNS)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.id.in_(wanted))
                .order_by(messages.c.seq)
            ).all()
        return [base.stored_message(row, now) for row in rows]

    # -- deleting ---------------------------------------------------------

    def delete(self, project: str, queue: str, message_id: str, claim_id: str | None) -> None:
        # rest-v2.md §4 table. A malformed claim id is refused before anything
        # else, even for a missing message (reference order).
        if claim_id is not None and not ids.is_valid_id(claim_id):
            raise errors.ClaimMismatch("The specified claim does not exist or has expired.")
        if not ids.is_valid_id(message_id):
            return
        now = clock.now()
        # One conditional DELETE does the allowed cases (no claim given and
        # the message not under a live claim; or the message's own claim id,
        # live or just expired). Only when it deletes nothing is the row
        # read, to tell "gone" (204) from "claimed" (403) and "not claimed"
        # (400): the refusals are rare, the deletes are the hot path.
        with self._db.write() as conn:
            deleted = conn.execute(_delete_statement(), {
                "b_project": project, "b_queue": queue, "b_now": now, "b_id": message_id,
                "b_claim": claim_id}).rowcount
            if deleted:
                return
            row = conn.execute(
                sa.select(messages.c.claim_id, messages.c.claim_expires)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.id == message_id)
            ).one_or_none()
        if row is None:
            return
        is_claimed = row.claim_id is not None and (row.claim_expires or 0) > now
        if claim_id is None or is_claimed:
            raise errors.MessageIsClaimed(
                "This message is claimed; it cannot be deleted without a valid claim ID.")
        raise errors.ClaimMismatch(
            "A claim was specified, but the message is not currently claimed.")

    def delete_each(self, project: str, queue: str,
                    deletes: list[tuple[str, str | None]]) -> list[errors.HeraldError | None]:
        """Several single-message deletes (``(message_id, claim_id)`` each, a
        coalesced batch's) with ``delete``'s outcome each: None, or the error
        ``delete`` would raise.

        The allowed cases are ``delete``'s own conditional DELETE, sent once
        with every row's parameters (one executemany: one round trip with
        psycopg's pipelining, each row planned as the single-row delete on
        the unique id index -- an ``id IN (...)`` list was planned as a scan
        of the whole queue while its statistics were stale). When every
        row was deleted, that is every outcome; otherwise each delete takes
        ``delete``'s path again, where a row deleted just now reads as gone
        (204, its outcome anyway) and a refused one gets its 403/400. A
        message named twice always takes that path, so the outcomes are
        those of running the deletes one after the other.
        """
        counts: dict[str, int] = {}
        for message_id, _ in deletes:
            counts[message_id] = counts.get(message_id, 0) + 1
        plain = [(mid, cid) for mid, cid in deletes if counts[mid] == 1 and ids.is_valid_id(mid)
                 and (cid is None or ids.is_valid_id(cid))]
        outcomes: list[errors.HeraldError | None] = [None] * len(deletes)
        if len(plain) == len(deletes):
            now = clock.now()
            with self._db.write() as conn:
                deleted = conn.execute(_delete_statement(), [
                    {"b_project": project, "b_queue": queue, "b_now": now, "b_id": mid,
                     "b_claim": cid} for mid, cid in plain]).rowcount
            if deleted == len(deletes):
                return outcomes
        for index, (message_id, claim_id) in enumerate(deletes):
            try:
                self.delete(project, queue, message_id, claim_id)
            except errors.HeraldError as exc:
                outcomes[index] = exc
        return outcomes

    def delete_many(self, project: str, queue: str, message_ids: list[str],
                    claim_ids: list[str] | None) -> None:
        wanted = [mid for mid in dict.fromkeys(message_ids or []) if ids.is_valid_id(mid)]
        with self._db.write() as conn:
            if claim_ids:
                holders: set[str] = set()
                if wanted:
                    holders = {cid for cid in conn.execute(
                        sa.select(messages.c.claim_id)
                        .where(base.in_queue(project, queue), messages.c.id.in_(wanted))
                    ).scalars() if cid}
                for cid in claim_ids:
                    if cid not in holders:
                        raise errors.BadRequest(
                            f"Claim {cid} does not exist in queue {queue} for project "
                            f"{project}")
            if wanted:
                conn.execute(sa.delete(messages).where(base.in_queue(project, queue),
                                                       messages.c.id.in_(wanted)))

    def pop(self, project: str, queue: str, limit: int) -> list[dict[str, Any]]:
        now = clock.now()
        # SKIP LOCKED: concurrent poppers and claimers take disjoint rows
        # instead of queueing behind each other (rendered only on PostgreSQL;
        # SQLite's immediate transaction already serializes them).
        chosen = (sa.select(messages.c.seq)
                  .where(base.in_queue(project, queue),
                         base.from_queue_start(project, queue), base.live(now),
                         base.unclaimed(now), base.visible(now))
                  .order_by(messages.c.seq)
                  .limit(limit)
                  .with_for_update(skip_locked=True))
        with self._db.write() as conn:
            rows = conn.execute(
                sa.delete(messages)
                .where(messages.c.seq.in_(chosen))
                .returning(*base.MESSAGE_COLUMNS)
            ).all()
        rows.sort(key=lambda row: row.seq)
        result = []
        for row in rows:
            item = base.stored_message(row, now)
            item["claim_id"] = None
            result.append(item)
        return result
