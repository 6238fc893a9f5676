"""IntegrationDeliveryLog as a queue: claim channel lanes with their first due deliveries,
top a lane up, hand back what was not sent. Each function is one short transaction's worth of
work; none of them holds a transaction open across a request to Teams. What Teams answered is
recorded by the completion writer (delivery/completions.py), in batches.

Guarantees kept here:
- One holder per lane. A channel (webhook) is a lane; one worker at a time holds it, under a
  lease, so its deliveries go out one after another in the order they were queued — which keeps
  Teams' per-channel rate limit and order across any number of workers. On PostgreSQL lanes
  are claimed with `FOR UPDATE SKIP LOCKED` (a claim in progress elsewhere is skipped, not
  waited for); on SQLite the write transaction itself (BEGIN IMMEDIATE) is the lock.
- Claims come in bulk: many lanes and the first due deliveries of each in one transaction;
  a lane tops itself up with one more (renewing its lease and its in-flight rows' lease in
  the same transaction) instead of a transaction per few cards.
- Leases run out. A worker that dies holds nothing for longer than its lease: its lanes are
  claimable and its in-flight deliveries due again once the lease is over (at-least-once).
- Nothing is sent for a channel that no longer wants it: a delivery none of whose
  subscriptions is enabled is skipped when taken, and deliveries of a deleted or disabled
  webhook are skipped by skip_orphans before each claim.
- Lanes of paused (429) or disabled webhooks are not claimed.
- Storm control: on a webhook with a storm threshold, the claim or top-up first folds a
  backlog of first attempts into summary cards (delivery/storm.py), in the same transaction.
- Combined cards (routing/combine.py) are drawn when their head is taken, after it is marked
  in flight (delivery/combined.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, literal_column, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketmate.audit import service as audit
from ticketmate.delivery import combined, storm
from ticketmate.delivery.retry import RetryPolicy, channel_pause
from ticketmate.metrics import DELIVERIES_FINISHED, LEASE_EXPIRIES
from ticketmate.models import (
    DeliveryAttempt,
    IntegrationDelivery,
    JiraEventRecord,
    TeamsSubscription,
    TeamsWebhook,
)
from ticketmate.teams.client import TeamsAnswer
from ticketmate.workspaces.generation import bump_generation

D = IntegrationDelivery
W = TeamsWebhook

DUE_STATUSES = ("pending", "in_flight")
FINISHED_STATUSES = ("delivered", "skipped", "folded")


@dataclass(frozen=True)
class Lane:
    webhook_id: str
    workspace_id: str
    url_ciphertext: bytes
    recent_sends: list[float]
    # The URL's family (security/urls.py): a refusal from a retired one says so.
    url_family: str = "unknown"
    # Storm control (delivery/storm.py); None: off.
    storm_threshold: int | None = None


@dataclass(frozen=True)
class Work:
    delivery_id: str
    webhook_id: str
    workspace_id: str
    message: bytes
    attempt_count: int  # attempts made before this one
    attempts_before_replay: int


def status_in(statuses: tuple[str, ...]) -> ColumnElement[bool]:
    # Written into the SQL as constants, not bound parameters: a partial index is used only
    # when the query repeats its condition literally (SQLite cannot match `status IN (?, ?)`,
    # and a generic PostgreSQL plan cannot either). Measured in bench/claim.py.
    return D.status.in_([literal_column(f"'{status}'") for status in statuses])


def _due(now: datetime) -> ColumnElement[bool]:
    # Pending rows whose time has come, and in-flight rows whose worker's lease ran out.
    return and_(
        status_in(DUE_STATUSES),
        D.next_attempt_at <= now,
        or_(D.status == "pending", D.locked_until < now),
    )


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _core(session: Session) -> Connection:
    """The session's connection, for the claim/take/release statements of the worker's hot
    path: they touch no ORM object, and a Core execution skips the ORM's per-statement work
    (a fifth of the worker's CPU when it went through Session.execute)."""
    return session.connection()


def claim_lanes(
    session: Session,
    *,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    exclude: frozenset[str] = frozenset(),
) -> list[Lane]:
    """Take up to `limit` free, unpaused, enabled lanes that have due deliveries."""
    due_lanes = select(D.webhook_id).where(_due(now), D.webhook_id.is_not(None)).distinct()
    query = (
        select(
            W.id, W.workspace_id, W.url_ciphertext, W.recent_sends, W.url_family, W.storm_threshold
        )
        .where(
            W.id.in_(due_lanes),
            W.enabled.is_(True),
            or_(W.lane_locked_until.is_(None), W.lane_locked_until < now),
            or_(W.paused_until.is_(None), W.paused_until <= now),
        )
        .limit(limit)
    )
    if exclude:
        query = query.where(W.id.not_in(exclude))
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=W)
    rows = _core(session).execute(query).all()
    if not rows:
        return []
    _core(session).execute(
        update(W)
        .where(W.id.in_([r.id for r in rows]))
        .values(lane_locked_until=now + lease, lane_worker=worker_id)
        .execution_options(synchronize_session=False)
    )
    return [
        Lane(
            r.id,
            r.workspace_id,
            r.url_ciphertext,
            list(r.recent_sends or []),
            r.url_family,
            r.storm_threshold,
        )
        for r in rows
    ]


def take_batch(
    session: Session,
    *,
    lane: Lane,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Work]:
    """The lane's next due deliveries, oldest first, marked in flight under this worker's lease
    (top_up, with a lost lane read as nothing to take)."""
    taken = top_up(session, lane=lane, worker_id=worker_id, now=now, lease=lease, limit=limit)
    return taken or []


def top_up(
    session: Session,
    *,
    lane: Lane,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    in_flight: bool = True,
) -> list[Work] | None:
    """The lane's next due deliveries, oldest first, marked in flight under this worker's lease;
    None when the lane is no longer this worker's (taken over after its lease ran out, or the
    webhook disabled), so that its holder stops sending to the channel at once.

    The lane's lease and the lease of the deliveries this worker already holds in flight on it
    (sent or about to be, their outcome not yet committed) are renewed in the same transaction:
    a lane that keeps topping itself up keeps what it holds. A delivery none of whose
    subscriptions is still enabled is skipped here, not sent.
    """
    held = _core(session).execute(
        update(W)
        .where(W.id == lane.webhook_id, W.lane_worker == worker_id, W.enabled.is_(True))
        .values(lane_locked_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if held.rowcount == 0:
        return None  # the lane was taken over or the webhook disabled meanwhile
    if in_flight:  # False: the caller knows it holds nothing in flight on the lane
        _core(session).execute(
            update(D)
            .where(
                D.webhook_id == lane.webhook_id,
                status_in(DUE_STATUSES),
                D.status == "in_flight",
                D.worker_id == worker_id,
            )
            .values(locked_until=now + lease)
            .execution_options(synchronize_session=False)
        )
    if limit <= 0:
        return []  # a renewal only: the lane holds all it may take
    return _take(session, [lane], worker_id=worker_id, now=now, lease=lease, limit=limit)[
        lane.webhook_id
    ]


def take_or_release(
    session: Session,
    *,
    lane: Lane,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    recent_sends: list[float],
) -> list[Work] | None:
    """For a holder with nothing in flight on the lane (all it sent is written): the lane's next
    due deliveries, or, when none is due, the lane released with its last answers' times in the
    same transaction ([]); None when the lane is no longer this worker's. One transaction where
    a top-up and a release would take two: most lanes end this way, once per burst."""
    taken = top_up(
        session,
        lane=lane,
        worker_id=worker_id,
        now=now,
        lease=lease,
        limit=limit,
        in_flight=False,
    )
    if taken == []:
        release_lane(
            session, webhook_id=lane.webhook_id, worker_id=worker_id, recent_sends=recent_sends
        )
    return taken


def claim_lanes_with_work(
    session: Session,
    *,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    take: int,
    exclude: frozenset[str] = frozenset(),
) -> list[tuple[Lane, list[Work]]]:
    """claim_lanes and, in the same transaction, up to `take` due deliveries of each lane:
    one round trip's worth of statements however many lanes are claimed."""
    lanes = claim_lanes(
        session, worker_id=worker_id, now=now, lease=lease, limit=limit, exclude=exclude
    )
    if not lanes:
        return []
    works = _take(session, lanes, worker_id=worker_id, now=now, lease=lease, limit=take)
    return [(lane, works[lane.webhook_id]) for lane in lanes]


def _due_rows(session: Session, webhook_ids: list[str], now: datetime, limit: int) -> list[Any]:
    columns = (
        D.id,
        D.webhook_id,
        D.message,
        D.attempt_count,
        D.attempts_before_replay,
        D.subscription_ids,
        D.workspace_id,
        D.status,
        D.event_id,
        D.event_type,
        D.combine_until,
    )
    if len(webhook_ids) == 1:
        return list(
            _core(session)
            .execute(
                select(*columns)
                .where(D.webhook_id == webhook_ids[0], _due(now))
                .order_by(D.id)
                .limit(limit)
            )
            .all()
        )
    # Many lanes at once: the first `limit` of each, oldest first, in one statement.
    place = func.row_number().over(partition_by=D.webhook_id, order_by=D.id).label("place")
    ranked = select(*columns, place).where(D.webhook_id.in_(webhook_ids), _due(now)).subquery()
    return list(
        _core(session)
        .execute(
            select(*(ranked.c[c.key] for c in columns))
            .where(ranked.c.place <= limit)
            .order_by(ranked.c.webhook_id, ranked.c.id)
        )
        .all()
    )


def _take(
    session: Session,
    lanes: list[Lane],
    *,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> dict[str, list[Work]]:
    taken: dict[str, list[Work]] = {lane.webhook_id: [] for lane in lanes}
    storm_lanes = {lane.webhook_id for lane in lanes if lane.storm_threshold is not None}
    for lane in lanes:
        if lane.storm_threshold is not None:
            storm.fold_lane(
                session, webhook_id=lane.webhook_id, threshold=lane.storm_threshold, now=now
            )
    rows = _due_rows(session, list(taken), now, limit)
    if storm_lanes:
        # A storm lane takes a few at a time, so that it tops up (and folds) often.
        rows = _first_of_storm_lanes(rows, storm_lanes)
    if not rows:
        return taken
    wanted = {sid for r in rows for sid in (r.subscription_ids or [])}
    live = set(
        _core(session)
        .execute(
            select(TeamsSubscription.id).where(
                TeamsSubscription.id.in_(wanted), TeamsSubscription.enabled.is_(True)
            )
        )
        .scalars()
    )
    send = [r for r in rows if live & set(r.subscription_ids or [])]
    skip = [r.id for r in rows if not live & set(r.subscription_ids or [])]
    if skip:
        _core(session).execute(
            update(D)
            .where(D.id.in_(skip))
            .values(
                status="skipped",
                last_error="Skipped: its subscription was disabled or deleted before sending.",
                locked_until=None,
                worker_id=None,
            )
            .execution_options(synchronize_session=False)
        )
    if send:
        _core(session).execute(
            update(D)
            .where(D.id.in_([r.id for r in send]))
            .values(status="in_flight", locked_until=now + lease, worker_id=worker_id)
            .execution_options(synchronize_session=False)
        )
    # A combining head whose window closed: its card is drawn now, after it is marked in
    # flight, so nothing joins it from here on (routing/combine.py).
    heads = [r for r in send if r.combine_until is not None and r.attempt_count == 0]
    drawn = combined.draw_combined(_core(session), heads) if heads else {}
    # Counted at the claim (a claim rolled back is rare and only over-counts): a due row still
    # in flight is one whose worker's lease ran out.
    expired = sum(1 for r in send if r.status == "in_flight")
    if expired:
        LEASE_EXPIRIES.inc(expired)
    if skip:
        DELIVERIES_FINISHED.labels("skipped").inc(len(skip))
    for r in send:
        taken[r.webhook_id].append(
            Work(
                r.id,
                r.webhook_id,
                r.workspace_id,
                drawn.get(r.id) or r.message.encode(),
                r.attempt_count,
                r.attempts_before_replay,
            )
        )
    return taken


def _first_of_storm_lanes(rows: list[Any], storm_lanes: set[str]) -> list[Any]:
    kept: list[Any] = []
    counts: dict[str, int] = {}
    for r in rows:
        if r.webhook_id in storm_lanes:
            counts[r.webhook_id] = counts.get(r.webhook_id, 0) + 1
            if counts[r.webhook_id] > storm.STORM_TAKE:
                continue
        kept.append(r)
    return kept


@dataclass(frozen=True)
class Completion:
    status: str  # delivered | pending (retry later) | dead_letter
    next_attempt_at: datetime | None
    channel_paused_until: datetime | None
    webhook_disabled: bool


@dataclass(frozen=True)
class Decision:
    """Where one answer moves its delivery."""

    number: int  # this attempt's number
    status: str  # delivered | pending (retry later) | dead_letter
    next_attempt_at: datetime | None
    last_error: str | None


def is_throttled(answer: TeamsAnswer) -> bool:
    """A 429, or a connector's 200 whose body reports one: the channel rests either way."""
    return answer.throttled or answer.error_kind == "throttled" or answer.status_code == 429


def decide(work: Work, answer: TeamsAnswer, *, now: datetime, policy: RetryPolicy) -> Decision:
    number = work.attempt_count + 1
    next_at: datetime | None = None
    if answer.outcome == "delivered":
        status = "delivered"
    elif answer.outcome == "retry":
        delay = policy.next_delay(number - work.attempts_before_replay, answer.retry_after_seconds)
        if delay is None:
            status = "dead_letter"
        else:
            status, next_at = "pending", now + timedelta(seconds=delay)
    else:
        status = "dead_letter"
    last_error = None if status == "delivered" else _last_error(answer, status, number, next_at)
    return Decision(number, status, next_at, last_error)


def complete(
    session: Session,
    *,
    work: Work,
    answer: TeamsAnswer,
    started_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    worker_id: str,
    auto_disable_after: int,
) -> Completion:
    """Record one attempt and move the delivery on: delivered, retry later, or dead letter.
    (The worker records its outcomes in batches, delivery/completions.py; same rules.)"""
    decision = decide(work, answer, now=now, policy=policy)
    session.add(DeliveryAttempt(**attempt_row(work, answer, started_at, decision, worker_id)))
    session.execute(
        update(D)
        .where(D.id == work.delivery_id, D.worker_id == worker_id, D.status == "in_flight")
        .values(**delivery_values(answer, decision, now))
        .execution_options(synchronize_session=False)
    )
    paused, disabled = _update_channel_health(
        session, work, answer, now, policy, auto_disable_after
    )
    return Completion(decision.status, decision.next_attempt_at, paused, disabled)


def attempt_row(
    work: Work, answer: TeamsAnswer, started_at: datetime, decision: Decision, worker_id: str
) -> dict[str, Any]:
    return {
        "delivery_id": work.delivery_id,
        "number": decision.number,
        "started_at": started_at,
        "duration_ms": answer.latency_ms,
        "status_code": answer.status_code,
        "error_kind": answer.error_kind,
        "response_excerpt": answer.excerpt or None,
        "outcome": answer.outcome,
        "message": answer.message,
        "worker_id": worker_id,
    }


def delivery_values(answer: TeamsAnswer, decision: Decision, now: datetime) -> dict[str, Any]:
    return {
        "status": decision.status,
        "attempt_count": decision.number,
        "next_attempt_at": decision.next_attempt_at or now,
        "locked_until": None,
        "worker_id": None,
        "last_status_code": answer.status_code,
        "last_error": decision.last_error,
        "delivered_at": now if decision.status == "delivered" else None,
        "updated_at": now,
    }


def _last_error(answer: TeamsAnswer, status: str, number: int, next_at: datetime | None) -> str:
    if status == "dead_letter" and answer.outcome == "retry":
        return f"Gave up after {number} attempts. Last answer: {answer.message}"
    if status == "dead_letter":
        return answer.message
    return answer.message


HEALTH_COLUMNS = (
    "enabled",
    "disabled_reason",
    "last_success_at",
    "last_failure_at",
    "last_failure_reason",
    "consecutive_failures",
    "consecutive_removed",
    "paused_until",
)


@dataclass
class ChannelHealth:
    """A webhook's health columns, moved on answer by answer (in memory, written once)."""

    webhook_id: str
    workspace_id: str
    channel_name: str
    enabled: bool
    disabled_reason: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure_reason: str | None
    consecutive_failures: int
    consecutive_removed: int
    paused_until: datetime | None

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HEALTH_COLUMNS}


def apply_answer(
    health: ChannelHealth,
    answer: TeamsAnswer,
    *,
    now: datetime,
    policy: RetryPolicy,
    auto_disable_after: int,
) -> tuple[datetime | None, bool]:
    """Move the channel's health on by one answer: (paused until, disabled just now)."""
    if answer.ok:
        health.last_success_at = now
        health.consecutive_failures = 0
        health.consecutive_removed = 0
        return None, False
    paused: datetime | None = None
    health.last_failure_at = now
    health.last_failure_reason = answer.message[:1000]
    health.consecutive_failures += 1
    health.consecutive_removed = health.consecutive_removed + 1 if answer.removed else 0
    if is_throttled(answer):
        paused = now + timedelta(seconds=channel_pause(answer.retry_after_seconds, policy.schedule))
        health.paused_until = paused
    if answer.removed and health.enabled and health.consecutive_removed >= auto_disable_after:
        health.enabled = False
        health.disabled_reason = (
            f"Disabled automatically: Teams answered {answer.status_code} (webhook removed from "
            f"the channel) {health.consecutive_removed} times in a row. Create a new webhook in "
            "Teams, update the URL here and enable it again."
        )
        return paused, True
    return paused, False


def record_auto_disable(session: Session, health: ChannelHealth, status_code: int | None) -> None:
    """What goes with an automatic disable, in its transaction: routing stops choosing this
    channel on every process from the next event on, and the audit log says why."""
    bump_generation(session, health.workspace_id)
    audit.record(
        session,
        workspace_id=health.workspace_id,
        actor=audit.SYSTEM,
        action="teams.webhook.auto_disabled",
        target_type="teams_webhook",
        target_id=health.webhook_id,
        details={
            "channel_name": health.channel_name,
            "status_code": status_code,
            "consecutive_removed": health.consecutive_removed,
        },
    )


def _update_channel_health(
    session: Session,
    work: Work,
    answer: TeamsAnswer,
    now: datetime,
    policy: RetryPolicy,
    auto_disable_after: int,
) -> tuple[datetime | None, bool]:
    webhook = session.get(W, work.webhook_id)
    if webhook is None:
        return None, False
    health = ChannelHealth(
        webhook.id,
        webhook.workspace_id,
        webhook.channel_name,
        **{name: getattr(webhook, name) for name in HEALTH_COLUMNS},
    )
    paused, disabled = apply_answer(
        health, answer, now=now, policy=policy, auto_disable_after=auto_disable_after
    )
    for name, value in health.values().items():
        setattr(webhook, name, value)
    if disabled:
        record_auto_disable(session, health, answer.status_code)
    return paused, disabled


def release(session: Session, *, delivery_ids: list[str], worker_id: str) -> None:
    """Hand deliveries this worker took but did not send back to the queue, unchanged."""
    if not delivery_ids:
        return
    _core(session).execute(
        update(D)
        .where(D.id.in_(delivery_ids), D.worker_id == worker_id, D.status == "in_flight")
        .values(status="pending", locked_until=None, worker_id=None)
        .execution_options(synchronize_session=False)
    )


def release_lane(
    session: Session, *, webhook_id: str, worker_id: str, recent_sends: list[float]
) -> None:
    _core(session).execute(
        update(W)
        .where(W.id == webhook_id, W.lane_worker == worker_id)
        .values(lane_locked_until=None, lane_worker=None, recent_sends=recent_sends)
        .execution_options(synchronize_session=False)
    )


def hold_lane(session: Session, *, webhook_id: str, until: datetime, reason: str) -> None:
    """Rest a channel that cannot be sent to for a reason of ours (e.g. its URL does not
    decrypt with the configured keys): its deliveries wait, nothing is lost, and the reason
    shows on the webhook."""
    session.execute(
        update(W)
        .where(W.id == webhook_id)
        .values(paused_until=until, last_failure_at=until, last_failure_reason=reason[:1000])
        .execution_options(synchronize_session=False)
    )


def skip_orphans(session: Session, *, now: datetime) -> int:
    """Deliveries whose webhook was deleted or disabled before they were sent become skipped."""
    total = 0
    for condition, reason in (
        (D.webhook_id.is_(None), "Skipped: the webhook was deleted before sending."),
        (
            D.webhook_id.in_(select(W.id).where(W.enabled.is_(False))),
            "Skipped: the webhook was disabled before sending.",
        ),
    ):
        result = _core(session).execute(
            update(D)
            .where(_due(now), condition)
            .values(status="skipped", last_error=reason, locked_until=None, worker_id=None)
            .execution_options(synchronize_session=False)
        )
        total += int(result.rowcount or 0)
    if total:
        DELIVERIES_FINISHED.labels("skipped").inc(total)
    return total


def next_due_at(session: Session) -> datetime | None:
    """When the earliest waiting delivery becomes due (for the worker's sleep)."""
    return session.scalar(select(func.min(D.next_attempt_at)).where(D.status.in_(DUE_STATUSES)))


def purge_finished(session: Session, *, before: datetime, batch: int = 500) -> int:
    """Delete up to `batch` finished (delivered, skipped or folded) deliveries, with their
    attempts, older than `before`, then events of that age that no delivery refers to any more."""
    ids = list(
        session.scalars(
            select(D.id).where(D.status.in_(FINISHED_STATUSES), D.updated_at < before).limit(batch)
        )
    )
    if ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
        session.execute(delete(D).where(D.id.in_(ids)))
    orphan_events = list(
        session.scalars(
            select(JiraEventRecord.id)
            .where(
                JiraEventRecord.received_at < before,
                ~exists().where(D.event_id == JiraEventRecord.id),
            )
            .limit(batch)
        )
    )
    if orphan_events:
        session.execute(delete(JiraEventRecord).where(JiraEventRecord.id.in_(orphan_events)))
    return len(ids) + len(orphan_events)
