"""IntakeWriter: the Jira events of many requests stored in one transaction, one commit.

Jira sends bursts (a bulk edit, an automation rule firing on every transition). Each request
hands its event to the writer and waits; the writer takes whatever has piled up while its
previous commit ran (at most MAX_BATCH events — a lone event is written at once, no timer
delays it) and, in ONE transaction on the asynchronous engine:

1. reads the batch's workspaces (slug → id, generation, credentials ciphertext, Jira site) in
   one query and authenticates every request against credentials decrypted once per
   workspace and generation (workspaces/credentials_cache.py); 401/400 are answered at once;
2. finds repeated X-Atlassian-Webhook-Identifiers — stored earlier (one query) or earlier in
   the same batch — which are answered 200 {"duplicate": true} with the stored event's id;
3. locks the dedupe keys of comment reports (sorted, so concurrent batches cannot deadlock)
   and finds earlier reports of the same comment, in the database or earlier in the batch;
4. pins each event's link to the workspace's Jira site (learning it from a signed event),
   and records or fills in each issue's security level (jira/security.py);
5. routes the events through the workspace's SubscriptionIndex into delivery rows
   (routing/router.py plan_deliveries, pure), and folds those that combine into the open card
   of their issue and channel (routing/combine.py);
6. inserts the events in one multi-row INSERT … ON CONFLICT DO NOTHING RETURNING, the
   deliveries in another, NOTIFYs the workers once, and commits.

Only then is each request answered: 202 means the event is committed. A batch that fails is
written again one event at a time, so a row that cannot be stored costs only itself (503, and
Jira sends it again); the database being down answers 503 to every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from ticketmate.bulk import insert_rows
from ticketmate.db import AsyncDatabase
from ticketmate.delivery.embedded import wake_worker
from ticketmate.errors import ApiError
from ticketmate.ids import new_id
from ticketmate.jira import service as events
from ticketmate.jira.intake import (
    IntakeAnswer,
    JiraRequest,
    Sender,
    check_credentials,
    parse_json_object,
    record_fields,
    safe_transform,
    unauthenticated,
    unavailable,
)
from ticketmate.jira.security import Sighted, resolve_levels
from ticketmate.jira.signature import burn_comparison
from ticketmate.jira.transform import Outcome, Transformed, link_site, pin_link
from ticketmate.metrics import (
    DELIVERIES_FINISHED,
    DELIVERIES_QUEUED,
    INTAKE_BATCH_EVENTS,
    INTAKE_COMMIT_SECONDS,
    JIRA_EVENTS,
)
from ticketmate.models import IntegrationDelivery, JiraEventRecord, Workspace
from ticketmate.routing.combine import join_open_cards
from ticketmate.routing.index import SubscriptionIndex
from ticketmate.routing.router import MATCHED_IDS_LIMIT, NOTIFY_CHANNEL, plan_deliveries
from ticketmate.security.crypto import DecryptionError
from ticketmate.state import Services
from ticketmate.timeutil import utcnow
from ticketmate.workspaces.service import SLUG_PATTERN, learn_jira_base_url

log = logging.getLogger(__name__)

# Events per transaction at most: a burst larger than this is written in several commits.
MAX_BATCH = 64

EVENTS_TABLE = cast(Table, JiraEventRecord.__table__)
DELIVERIES_TABLE = cast(Table, IntegrationDelivery.__table__)


class _IdentifierRace(Exception):
    """An identifier was stored by another transaction between our look and our insert."""


@dataclass
class _Waiting:
    incoming: JiraRequest
    answer: asyncio.Future[IntakeAnswer]


@dataclass
class _Event:
    """One authenticated, parsed event of the batch on its way to the database."""

    position: int
    sender: Sender
    incoming: JiraRequest
    raw: str
    outcome: Outcome
    event_id: str = ""
    duplicate_of: str | None = None  # the earlier report of the same comment
    same_identifier_as: _Event | None = None  # an earlier copy in this batch
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    routing_failed: bool = False

    @property
    def envelope(self) -> Any:
        return self.outcome.envelope if isinstance(self.outcome, Transformed) else None


@dataclass(frozen=True)
class _Written:
    """What one transaction decided for each request, in request order."""

    answers: list[IntakeAnswer | ApiError]
    statuses: list[str | None]  # the stored status of each new event, for metrics and logs
    deliveries: int


class IntakeWriter:
    """One per app: started and stopped in the app's lifespan, on its event loop."""

    def __init__(self, svc: Services, db: AsyncDatabase, max_batch: int = MAX_BATCH) -> None:
        self.svc = svc
        self.db = db
        self.max_batch = max_batch
        self.commits = 0  # transactions that committed events: fewer than events under load
        self._queue: asyncio.Queue[_Waiting | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Requests waiting for the next transaction (not counting the one being written)."""
        return self._queue.qsize()

    def start(self) -> None:
        # One writer: a second transaction in flight measured within noise on the intake
        # benchmark, and it would let two copies of one event be routed before either commits.
        self._task = asyncio.create_task(self._run(), name="jira-intake-writer")

    async def stop(self) -> None:
        """Write what is waiting, then stop: every accepted request gets its answer."""
        self._closed = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def submit(self, incoming: JiraRequest) -> IntakeAnswer:
        """The request's answer once its transaction committed; raises its ApiError."""
        if self._closed or self._task is None:
            raise unavailable()
        waiting = _Waiting(incoming, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(waiting)
        # A client that goes away does not cancel the write: the event is stored regardless.
        return await asyncio.shield(waiting.answer)

    # -----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                following = self._queue.get_nowait()
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            try:
                await self._write(batch)
            except Exception:  # never lose the writer: answer the batch and go on
                log.exception("jira intake: the writer failed on a batch")
                for waiting in batch:
                    _answer(waiting, unavailable())

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            written = await self._write_once(batch)
        except Exception as problem:
            if len(batch) > 1:
                # One bad row must not fail the others: each is written on its own.
                log.warning(
                    "jira intake: a batch of %d events failed (%s); writing them one by one",
                    len(batch),
                    type(problem).__name__,
                )
                for waiting in batch:
                    await self._write([waiting])
                return
            written = await self._write_single_again(batch, problem)
        self._answer_all(batch, written)

    async def _write_single_again(self, batch: list[_Waiting], problem: Exception) -> _Written:
        if isinstance(problem, _IdentifierRace):
            # The other copy has committed by now: written again, this one is its duplicate.
            try:
                return await self._write_once(batch)
            except Exception as again:
                problem = again
        if isinstance(problem, ApiError):
            return _Written([problem], [None], 0)
        log.error(
            "jira intake: could not store an event: %s: %s",
            type(problem).__name__,
            getattr(problem, "orig", None) or problem,
        )
        return _Written([unavailable()], [None], 0)

    def _answer_all(self, batch: list[_Waiting], written: _Written) -> None:
        if written.deliveries > 0:
            wake_worker(self.svc)
        for waiting, answer, status in zip(batch, written.answers, written.statuses, strict=True):
            if isinstance(answer, IntakeAnswer):
                JIRA_EVENTS.labels("duplicate" if answer.duplicate else status or "routed").inc()
                if not answer.duplicate:
                    log.info(
                        "jira intake: stored event %s (%s) for workspace %s",
                        answer.event_id,
                        status,
                        waiting.incoming.workspace_slug,
                        extra={
                            "event_id": answer.event_id,
                            "workspace": waiting.incoming.workspace_slug,
                        },
                    )
            _answer(waiting, answer)

    # -----------------------------------------------------------------------------------------
    # One transaction

    async def _write_once(self, batch: Sequence[_Waiting]) -> _Written:
        answers: list[IntakeAnswer | ApiError | None] = [None] * len(batch)
        now = utcnow()
        started = time.perf_counter()
        async with self.db.transaction() as conn:
            workspaces = await _workspaces(conn, [w.incoming for w in batch])
            pending: list[_Event] = []
            for position, waiting in enumerate(batch):
                try:
                    pending.append(self._understand(position, waiting.incoming, workspaces))
                except ApiError as refused:
                    answers[position] = refused
            stored = await _drop_repeated_identifiers(conn, pending, answers)
            await _find_earlier_reports(conn, stored, now)
            await self._pin_links(conn, stored, workspaces)
            await _security_levels(conn, stored)
            await self._route(conn, stored, workspaces, now)
            await _insert(conn, stored, now)
            deliveries = [row for event in stored for row in event.deliveries]
            joined = 0
            if deliveries:
                joined = await join_open_cards(conn, deliveries, now)
                await insert_rows(conn, DELIVERIES_TABLE, deliveries)
                if conn.dialect.name == "postgresql":
                    # Heard by the workers when this transaction commits, not before.
                    await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        # Committed: now the answers may go out.
        INTAKE_COMMIT_SECONDS.observe(time.perf_counter() - started)
        INTAKE_BATCH_EVENTS.observe(len(batch))
        if stored:
            self.commits += 1
        if deliveries:
            DELIVERIES_QUEUED.inc(len(deliveries))
        if joined:  # folded into a card that waits for more updates: final from the start
            DELIVERIES_FINISHED.labels("folded").inc(joined)
        statuses: list[str | None] = [None] * len(batch)
        for event in stored:
            statuses[event.position] = event.outcome.status
            answers[event.position] = IntakeAnswer(event.event_id, len(event.deliveries))
        for event in pending:
            if event.same_identifier_as is not None:
                answers[event.position] = IntakeAnswer(
                    event.same_identifier_as.event_id, 0, duplicate=True
                )
        final = [a if a is not None else unavailable() for a in answers]
        return _Written(final, statuses, len(deliveries))

    def _understand(
        self, position: int, incoming: JiraRequest, workspaces: dict[str, Any]
    ) -> _Event:
        """Authenticate (401), parse (400) and transform one request, in the intake's order."""
        slug = incoming.workspace_slug
        workspace = workspaces.get(slug) if slug is not None else None
        if workspace is None:
            burn_comparison(incoming.body, incoming.signature, incoming.tokens)
            raise unauthenticated()
        try:
            credentials = self.svc.jira_credentials.get(
                self.svc.keyring,
                workspace.id,
                workspace.config_generation,
                workspace.jira_secret_ciphertext,
                workspace.jira_ingest_token_ciphertext,
            )
        except DecryptionError as problem:
            log.error(
                "jira intake: cannot decrypt the credentials of %s: %s",
                slug,
                problem,
                extra={"workspace": slug},
            )
            raise unavailable() from None
        sender = check_credentials(workspace.id, workspace.jira_base_url, credentials, incoming)
        raw, payload = parse_json_object(incoming.body)
        outcome = safe_transform(payload, incoming, sender.jira_base_url)
        return _Event(position, sender, incoming, raw, outcome)

    async def _pin_links(
        self, conn: AsyncConnection, stored: list[_Event], workspaces: dict[str, Any]
    ) -> None:
        """Check each link against the workspace's Jira site; the first signed event with a
        link sets it (a rare write, through the same sync code as ever)."""
        sites = {row.id: row.jira_base_url for row in workspaces.values()}
        for event in stored:
            envelope = event.envelope
            if envelope is None:
                continue
            site = link_site(envelope)
            if site is None:
                continue
            workspace_id = event.sender.workspace_id
            pinned = sites.get(workspace_id)
            if pinned is None and event.sender.signed:

                def learn(sync: Any, workspace_id: str = workspace_id, site: str = site) -> Any:
                    with Session(bind=sync) as session:
                        learned = learn_jira_base_url(session, workspace_id, site)
                        session.flush()
                        return learned

                pinned = await conn.run_sync(learn)
                sites[workspace_id] = pinned
            event.outcome = Transformed(pin_link(envelope, pinned))

    async def _route(
        self,
        conn: AsyncConnection,
        stored: list[_Event],
        workspaces: dict[str, Any],
        now: Any,
    ) -> None:
        generations = {row.id: row.config_generation for row in workspaces.values()}
        indexes: dict[str, SubscriptionIndex] = {}
        for event in stored:
            envelope = event.envelope
            if envelope is None or event.duplicate_of is not None:
                continue
            workspace_id = event.sender.workspace_id
            try:
                if workspace_id not in indexes:
                    indexes[workspace_id] = await self._index(
                        conn, workspace_id, generations[workspace_id]
                    )
                index = indexes[workspace_id]
                matches = index.match(envelope)
                event.deliveries = plan_deliveries(
                    workspace_id, event.event_id, envelope, matches, now
                )
                event.routing = {
                    "matched_subscription_ids": [
                        m.subscription_id for m in matches[:MATCHED_IDS_LIMIT]
                    ],
                    "matched_count": len(matches),
                    "not_matched_count": max(index.total - len(matches), 0),
                }
            except Exception:
                log.exception(
                    "jira intake: routing failed for event %s",
                    event.event_id,
                    extra={"event_id": event.event_id, "workspace": event.incoming.workspace_slug},
                )
                event.deliveries, event.routing, event.routing_failed = [], {}, True

    async def _index(
        self, conn: AsyncConnection, workspace_id: str, generation: int
    ) -> SubscriptionIndex:
        """The workspace's index under the generation this transaction read; loading it (on a
        change) reads the subscriptions in this transaction."""
        cache = self.svc.subscription_index

        def get(sync: Any) -> SubscriptionIndex:
            with Session(bind=sync) as session:
                return cache.get(session, workspace_id, generation)

        return await conn.run_sync(get)


# ---------------------------------------------------------------------------------------------
# The steps of a transaction that need no writer state


def _answer(waiting: _Waiting, answer: IntakeAnswer | ApiError) -> None:
    if waiting.answer.done():
        return
    if isinstance(answer, ApiError):
        waiting.answer.set_exception(answer)
    else:
        waiting.answer.set_result(answer)


async def _workspaces(conn: AsyncConnection, batch: list[JiraRequest]) -> dict[str, Any]:
    slugs = {
        r.workspace_slug
        for r in batch
        if r.workspace_slug is not None and SLUG_PATTERN.match(r.workspace_slug)
    }
    if not slugs:
        return {}
    rows = await conn.execute(
        select(
            Workspace.id,
            Workspace.slug,
            Workspace.config_generation,
            Workspace.jira_secret_ciphertext,
            Workspace.jira_ingest_token_ciphertext,
            Workspace.jira_base_url,
        ).where(Workspace.slug.in_(sorted(slugs)))
    )
    return {row.slug: row for row in rows}


async def _drop_repeated_identifiers(
    conn: AsyncConnection, pending: list[_Event], answers: list[IntakeAnswer | ApiError | None]
) -> list[_Event]:
    """The events to store: those whose identifier is new. A repeat of a stored identifier is
    answered with the stored event; a repeat within the batch, with the first copy's."""
    identified = [e for e in pending if e.incoming.jira_event_id is not None]
    existing: dict[tuple[str, str], str] = {}
    if identified:
        rows = await conn.execute(
            select(
                JiraEventRecord.workspace_id, JiraEventRecord.jira_event_id, JiraEventRecord.id
            ).where(
                JiraEventRecord.workspace_id.in_(
                    sorted({e.sender.workspace_id for e in identified})
                ),
                JiraEventRecord.jira_event_id.in_(
                    sorted({str(e.incoming.jira_event_id) for e in identified})
                ),
            )
        )
        existing = {(row.workspace_id, row.jira_event_id): row.id for row in rows}
    first_copy: dict[tuple[str, str], _Event] = {}
    stored = []
    for event in pending:
        identifier = event.incoming.jira_event_id
        if identifier is not None:
            key = (event.sender.workspace_id, identifier)
            if key in existing:
                answers[event.position] = IntakeAnswer(existing[key], 0, duplicate=True)
                continue
            if key in first_copy:
                event.same_identifier_as = first_copy[key]
                continue
            first_copy[key] = event
        event.event_id = new_id()
        stored.append(event)
    return stored


async def _find_earlier_reports(conn: AsyncConnection, stored: list[_Event], now: Any) -> None:
    """Mark second reports of a comment (jira/service.py: the same key, lock and window)."""
    keyed = [
        (event, events.stored_dedupe_key(event.envelope.dedupe_key))
        for event in stored
        if event.envelope is not None and event.envelope.dedupe_key is not None
    ]
    if not keyed:
        return
    if conn.dialect.name == "postgresql":
        for lock_key in sorted(
            {events.dedupe_lock_key(e.sender.workspace_id, e.envelope.dedupe_key) for e, _ in keyed}
        ):
            await conn.execute(events.DEDUPE_LOCK, {"key": lock_key})
    first: dict[tuple[str, str], str] = {}
    for workspace_id in sorted({e.sender.workspace_id for e, _ in keyed}):
        keys = sorted({key for e, key in keyed if e.sender.workspace_id == workspace_id})
        rows = await conn.execute(
            events.earlier_reports_query(workspace_id, keys, now - events.DEDUPE_WINDOW)
        )
        first.update({(workspace_id, row.dedupe_key): row.id for row in rows})
    for event, key in keyed:
        found = first.get((event.sender.workspace_id, key))
        if found is None:
            first[(event.sender.workspace_id, key)] = event.event_id
        else:
            event.duplicate_of = found


async def _security_levels(conn: AsyncConnection, stored: list[_Event]) -> None:
    """Record the levels the events say and fill in the remembered ones (jira/security.py)."""
    with_envelope = [event for event in stored if event.envelope is not None]
    if not with_envelope:
        return
    resolved = await resolve_levels(
        conn,
        [
            Sighted(event.sender.workspace_id, event.envelope, event.incoming.received_at)
            for event in with_envelope
        ],
    )
    for event, envelope in zip(with_envelope, resolved, strict=True):
        if envelope is not event.envelope:
            event.outcome = Transformed(envelope)


async def _insert(conn: AsyncConnection, stored: list[_Event], now: Any) -> None:
    if not stored:
        return
    # In identifier order: two processes' batches holding the same identifiers then take the
    # unique index's row locks in one order, and wait for each other instead of deadlocking.
    rows = [
        _row(event, now)
        for event in sorted(
            stored, key=lambda e: (e.sender.workspace_id, e.incoming.jira_event_id or "")
        )
    ]
    inserted = await insert_rows(
        conn,
        EVENTS_TABLE,
        rows,
        skip_conflicts_on=("workspace_id", "jira_event_id"),
        returning="id",
    )
    if len(inserted) != len(rows):
        raise _IdentifierRace()


def _row(event: _Event, now: Any) -> dict[str, Any]:
    outcome = event.outcome
    fields = record_fields(outcome)
    reason = fields.get("reason")
    if event.duplicate_of is not None:
        reason = f"Duplicate of event {event.duplicate_of} (same comment); not routed again."
    elif event.routing_failed:
        reason = "Routing failed because of an error in this service; see the server log."
    dedupe_key = event.envelope.dedupe_key if event.envelope is not None else None
    return {
        "id": event.event_id,
        "workspace_id": event.sender.workspace_id,
        "received_at": event.incoming.received_at,
        "jira_event_id": event.incoming.jira_event_id,
        "jira_event": (fields.get("jira_event") or "")[:100] or None,
        "status": outcome.status,
        "reason": reason,
        "event_types": fields.get("event_types", []),
        "issue_key": (fields.get("issue_key") or "")[:100] or None,
        "summary": fields.get("summary"),
        "raw_body": event.raw,
        "headers": event.incoming.headers,
        "envelope": fields.get("envelope"),
        "dedupe_key": events.stored_dedupe_key(dedupe_key) if dedupe_key else None,
        "matched_subscription_ids": event.routing.get("matched_subscription_ids"),
        "matched_count": event.routing.get("matched_count"),
        "not_matched_count": event.routing.get("not_matched_count"),
        "created_at": now,
        "updated_at": now,
    }
