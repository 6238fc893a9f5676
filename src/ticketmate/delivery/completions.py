"""The completion writer: records what Teams answered, many sends to one transaction.

Lanes hand in (delivery, answer, started at) as soon as an answer is in; one task writes them:
the attempt rows (one INSERT), the deliveries' new states (one UPDATE per distinct outcome)
and each webhook's health, added up over the batch's answers in order (one UPDATE).

Guarantees kept here:
- A delivery is `delivered` (or retried later, or a dead letter) only once the transaction of
  its batch has committed. Until then it stays in flight under this worker's lease; if the
  commit never comes (the database is down, the process dies) the lease runs out and the card
  is sent again: at-least-once, never lost.
- A batch landing late changes nothing it no longer owns: a delivery moves on only while it is
  still in flight under this worker (after a lease was taken over, the new holder owns it).
  Its attempt row is kept either way (both tries are shown).
- The rules are queue.py's, applied answer by answer in the order the answers came: the retry
  schedule and Retry-After (queue.decide), a channel rests on a 429 or a connector's 200
  quoting one, and a webhook answered "removed" N times in a row is disabled with its audit
  entry and the workspace's routing generation moved on — in the same transaction.
- No timer on the latency path: the writer writes as soon as it is idle and something waits;
  a batch is whatever piled up while the previous commit ran (at most `batch_size`).
- A failed commit is tried again (with backoff), then outcome by outcome; what still fails is
  reported to its lane (CompletionFailed), which stops and leaves its lease to run out.
- Backpressure: a lane handing in waits while `max_pending` outcomes are not yet written.
- Locks in one order: the batch's webhooks (by id), then its deliveries, as a lane's top-up
  does; so a batch and a top-up never deadlock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from ticketmate.bulk import id_in, insert_rows, update_rows
from ticketmate.db import AsyncDatabase
from ticketmate.delivery import queue
from ticketmate.delivery.queue import HEALTH_COLUMNS, ChannelHealth, Completion, Work
from ticketmate.delivery.retry import RetryPolicy
from ticketmate.ids import new_id
from ticketmate.metrics import DELIVERIES_FINISHED, WEBHOOKS_AUTO_DISABLED
from ticketmate.models import DeliveryAttempt, IntegrationDelivery, TeamsWebhook
from ticketmate.teams.client import TeamsAnswer

log = logging.getLogger(__name__)

D = cast(Table, IntegrationDelivery.__table__)
W = cast(Table, TeamsWebhook.__table__)
A = cast(Table, DeliveryAttempt.__table__)

FINAL_STATUSES = ("delivered", "dead_letter")
BATCH_SIZE = 200
MAX_PENDING = 2000
RETRY_DELAYS = (0.05, 0.25, 1.0)  # a failed batch is tried again after these, then singly


class CompletionFailed(Exception):
    """The outcome could not be written: the delivery stays in flight until its lease ends."""


@dataclass
class Outcome:
    work: Work
    answer: TeamsAnswer
    started_at: datetime
    done: asyncio.Future[Completion] = field(repr=False)


class CompletionWriter:
    def __init__(
        self,
        adb: AsyncDatabase,
        *,
        worker_id: str,
        policy: RetryPolicy,
        auto_disable_after: int,
        clock: Callable[[], datetime],
        on_written: Callable[[str], None] = lambda _status: None,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.adb = adb
        self.worker_id = worker_id
        self.policy = policy
        self.auto_disable_after = auto_disable_after
        self.clock = clock
        self.on_written = on_written
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._waiting: deque[Outcome] = deque()
        self._unwritten = 0  # waiting plus being written
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for the tests and the profile)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-completions")

    async def submit(
        self, work: Work, answer: TeamsAnswer, started_at: datetime
    ) -> asyncio.Future[Completion]:
        """Hand one outcome in; the future resolves once its batch has committed."""
        while self._unwritten >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._waiting.append(Outcome(work, answer, started_at, done))
        self._unwritten += 1
        self._wake.set()
        return done

    async def close(self) -> None:
        """Write everything handed in, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [
                self._waiting.popleft() for _ in range(min(self.batch_size, len(self._waiting)))
            ]
            try:
                await self._write_with_retries(batch)
            except Exception:  # never let the writer die: fail the batch, keep going
                log.exception("recording delivery outcomes failed")
                self._fail(batch)
            self._unwritten -= len(batch)
            if self._unwritten < self.max_pending:
                self._room.set()

    async def _write_with_retries(self, batch: list[Outcome]) -> None:
        for delay in (*RETRY_DELAYS, None):
            try:
                self._resolve(batch, await self._write(batch))
                return
            except Exception as exc:
                if delay is None:
                    log.warning(
                        "recording %d delivery outcomes failed (%s); trying them one by one",
                        len(batch),
                        type(exc).__name__,
                    )
                    break
                log.info(
                    "recording %d delivery outcomes failed (%s); trying again in %g s",
                    len(batch),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        if len(batch) == 1:
            self._fail(batch)
            return
        for outcome in batch:
            try:
                self._resolve([outcome], await self._write([outcome]))
            except Exception as exc:
                log.error(
                    "recording the outcome of delivery %s failed (%s); it is sent again once "
                    "its lease runs out",
                    outcome.work.delivery_id,
                    type(exc).__name__,
                    extra={"delivery_id": outcome.work.delivery_id},
                )
                self._fail([outcome])

    def _resolve(self, batch: list[Outcome], completions: list[Completion]) -> None:
        self.batches += 1
        for outcome, completion in zip(batch, completions, strict=True):
            self.on_written(completion.status)
            # Counted once committed, so a batch tried again is not counted twice.
            if completion.status in FINAL_STATUSES:
                DELIVERIES_FINISHED.labels(completion.status).inc()
            if completion.webhook_disabled:
                WEBHOOKS_AUTO_DISABLED.inc()
            if not outcome.done.done():
                outcome.done.set_result(completion)

    def _fail(self, batch: list[Outcome]) -> None:
        for outcome in batch:
            if not outcome.done.done():
                outcome.done.set_exception(CompletionFailed(outcome.work.delivery_id))
                # Lanes that stopped waiting must not make the loop warn about it.
                outcome.done.exception()

    async def _write(self, batch: list[Outcome]) -> list[Completion]:
        async with self.adb.transaction() as conn:
            return await self._record(conn, batch)

    async def _record(self, conn: AsyncConnection, batch: list[Outcome]) -> list[Completion]:
        now = self.clock()
        # The webhooks first, then their deliveries: the order a lane's top-up takes them in
        # (queue.take_batch renews the lane, then its deliveries in flight). Taken the other
        # way round, a batch and a top-up of the same lane could each wait for the other
        # until PostgreSQL broke the deadlock a second later.
        channels = await self._lock_channels(conn, batch)
        decisions = [queue.decide(o.work, o.answer, now=now, policy=self.policy) for o in batch]
        await insert_rows(
            conn,
            A,
            [
                {
                    "id": new_id(),
                    **queue.attempt_row(o.work, o.answer, o.started_at, d, self.worker_id),
                }
                for o, d in zip(batch, decisions, strict=True)
            ],
        )
        # Deliveries that end the same way (most often: delivered, first attempt, 200) share
        # one UPDATE … WHERE id IN (…): a statement per distinct outcome, not per card.
        groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
        for o, d in zip(batch, decisions, strict=True):
            values = queue.delivery_values(o.answer, d, now)
            groups.setdefault(tuple(values.items()), []).append(o.work.delivery_id)
        for values_key, ids in groups.items():
            await conn.execute(
                update(D)
                .where(
                    id_in(D.c.id, ids, conn.dialect.name),
                    D.c.worker_id == self.worker_id,
                    D.c.status == "in_flight",
                )
                .values(dict(values_key))
            )
        health = await self._health(conn, channels, batch, now)
        return [
            Completion(d.status, d.next_attempt_at, *health[i]) for i, d in enumerate(decisions)
        ]

    async def _lock_channels(
        self, conn: AsyncConnection, batch: list[Outcome]
    ) -> dict[str, ChannelHealth]:
        """The batch's webhooks with their health, locked (PostgreSQL) in the order of their
        ids, so that two writers never wait for each other."""
        ids = sorted({o.work.webhook_id for o in batch})
        query = (
            select(
                W.c.id, W.c.workspace_id, W.c.channel_name, *(W.c[name] for name in HEALTH_COLUMNS)
            )
            .where(W.c.id.in_(ids))
            .order_by(W.c.id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=W)  # a concurrent holder's batch waits its turn
        return {r.id: ChannelHealth(*r) for r in (await conn.execute(query)).all()}

    async def _health(
        self,
        conn: AsyncConnection,
        channels: dict[str, ChannelHealth],
        batch: list[Outcome],
        now: datetime,
    ) -> list[tuple[datetime | None, bool]]:
        """Each webhook's health moved on by its answers in order, written once per webhook."""
        disabled: list[tuple[ChannelHealth, int | None]] = []
        effects: list[tuple[datetime | None, bool]] = []
        for outcome in batch:
            channel = channels.get(outcome.work.webhook_id)
            if channel is None:  # the webhook was deleted meanwhile
                effects.append((None, False))
                continue
            paused, now_disabled = queue.apply_answer(
                channel,
                outcome.answer,
                now=now,
                policy=self.policy,
                auto_disable_after=self.auto_disable_after,
            )
            if now_disabled:
                disabled.append((channel, outcome.answer.status_code))
            effects.append((paused, now_disabled))
        if channels:
            await update_rows(
                conn, W, [{"id": c.webhook_id, **c.values()} for c in channels.values()]
            )
        if disabled:
            await conn.run_sync(_record_auto_disables, disabled)
        return effects


def _record_auto_disables(
    connection: Connection, disabled: list[tuple[ChannelHealth, int | None]]
) -> None:
    # Rare, and the audit chain lives in the ORM: a Session on this very connection, so the
    # entry and the generation bump commit (or not) with the batch.
    with Session(bind=connection) as session:
        for channel, status_code in disabled:
            queue.record_auto_disable(session, channel, status_code)
        session.flush()
