"""TeamsDeliveryWorker: sends queued deliveries to Teams, channel by channel.

How it runs:
- Wakes at once when work is queued: an in-process signal when it shares the process with the
  API, PostgreSQL LISTEN/NOTIFY across processes. It also polls every
  TICKETMATE_WORKER_POLL_SECONDS, which is what guarantees pickup if a signal is missed.
- Claims channel lanes (see delivery/queue.py) and runs one task per lane: that task sends the
  lane's deliveries one after another, oldest first, keeping to the channel's rate limit,
  while other lanes run side by side — a slow or throttled channel holds back only itself.
- The webhook URL is decrypted only in memory, just before the request.
- On stop it claims nothing new, finishes the requests in flight, hands back what it took but
  did not send, and releases its lanes. A worker that dies loses nothing: its leases run out
  and another worker takes the work again (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import aiohttp

from ticketmate.delivery import queue
from ticketmate.delivery.queue import Lane, Work
from ticketmate.delivery.retry import RetryPolicy
from ticketmate.metrics import DELIVERY_ATTEMPTS, TEAMS_LATENCY
from ticketmate.security.crypto import DecryptionError
from ticketmate.state import Services
from ticketmate.teams.client import TeamsAnswer, new_http_session, post_message
from ticketmate.teams.service import webhook_url_aad
from ticketmate.timeutil import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

BATCH = 4  # deliveries taken from a lane at a time: about one second's worth at 4/s
WINDOW_SECONDS = 1.0
PURGE_EVERY_SECONDS = 600.0
KEY_PROBLEM_PAUSE_SECONDS = 300.0  # a missing key is fixed by a person: look again later


@dataclass
class WorkerStats:
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0


class ChannelRate:
    """At most `limit` requests per rolling second to one channel, as the receiver sees them.

    Requests on a lane go one at a time, so request k arrives after it is sent and request
    k-limit arrived before its answer came back. Sending request k no earlier than one second
    after the answer to request k-limit therefore keeps any one-second window at the receiver
    to `limit` requests, whatever the network does in between.
    """

    def __init__(self, limit: int, answered_at: list[float]) -> None:
        self.limit = limit
        self.answered: deque[float] = deque(answered_at[-limit:], maxlen=limit)

    def wait_seconds(self, now: float) -> float:
        if len(self.answered) < self.limit:
            return 0.0
        return max(0.0, self.answered[0] + WINDOW_SECONDS - now)

    def record(self, answered_at: float) -> None:
        self.answered.append(answered_at)


class TeamsDeliveryWorker:
    def __init__(
        self,
        svc: Services,
        *,
        concurrency: int = 16,
        worker_id: str | None = None,
        clock: Clock = utcnow,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.svc = svc
        self.settings = svc.settings
        self.concurrency = max(1, concurrency)
        self.worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[:64]
        )
        self.clock = clock
        self.policy = policy or RetryPolicy(tuple(self.settings.retry_schedule_seconds))
        timeout = self.settings.delivery_timeout_seconds
        # Long enough for a whole batch to time out one request after another, plus slack.
        self.lease = timedelta(seconds=BATCH * (timeout + WINDOW_SECONDS) + 30)
        self.stats = WorkerStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._last_purge = 0.0

    # -- signals ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for work now. Safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading_ident_is_loop(loop):
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish. Safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._stopping.set)
        loop.call_soon_threadsafe(self._wake.set)

    # -- main loop -------------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> WorkerStats:
        """Deliver until stopped; with once=True, until nothing is due, then return."""
        self._loop = asyncio.get_running_loop()
        listener = None
        if not once and self.svc.db.dialect == "postgresql":
            listener = asyncio.create_task(self._listen(), name="delivery-listen")
        async with new_http_session(connections_per_host=self.concurrency) as http:
            self._http = http
            try:
                await self._loop_until_done(once)
            finally:
                self._stopping.set()
                if self._lanes:
                    await asyncio.gather(*self._lanes.values(), return_exceptions=True)
                if listener is not None:
                    listener.cancel()
                    await asyncio.gather(listener, return_exceptions=True)
                self._http = None
        return self.stats

    async def _loop_until_done(self, once: bool) -> None:
        poll = self.settings.worker_poll_seconds
        while not self._stopping.is_set():
            self._wake.clear()
            claimed = await self._claim()
            if once and not claimed and not self._lanes:
                return
            if not once:
                await self._housekeeping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def _claim(self) -> int:
        free = self.concurrency - len(self._lanes)
        if free <= 0:
            return 0
        now = self.clock()

        def claim() -> list[Lane]:
            with self.svc.db.transaction() as session:
                queue.skip_orphans(session, now=now)
                return queue.claim_lanes(
                    session,
                    worker_id=self.worker_id,
                    now=now,
                    lease=self.lease,
                    limit=free,
                    exclude=frozenset(self._lanes),
                )

        try:
            lanes = await self._db(claim)
        except Exception:
            log.exception("claiming deliveries failed; trying again at the next poll")
            return 0
        for lane in lanes:
            task = asyncio.create_task(self._run_lane(lane), name=f"lane-{lane.webhook_id}")
            self._lanes[lane.webhook_id] = task
        return len(lanes)

    async def _housekeeping(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = time.monotonic()
        before = self.clock() - timedelta(days=self.settings.retention_days)

        def purge() -> int:
            with self.svc.db.transaction() as session:
                return queue.purge_finished(session, before=before)

        try:
            purged = await self._db(purge)
            if purged:
                log.info("purged %d finished deliveries and events past retention", purged)
                self._last_purge = 0.0  # more may be waiting: purge the next batch soon
        except Exception:
            log.exception("purging old deliveries failed")

    # -- one channel -----------------------------------------------------------------------

    async def _run_lane(self, lane: Lane) -> None:
        rate = ChannelRate(self.settings.channel_rate_per_second, lane.recent_sends)
        try:
            await self._drain_lane(lane, rate)
        except Exception:
            log.exception("delivering to webhook %s failed; its lease will expire", lane.webhook_id)
        finally:
            try:
                await self._db(lambda: self._release_lane(lane.webhook_id, list(rate.answered)))
            except Exception:
                log.exception("releasing lane %s failed; its lease will expire", lane.webhook_id)
            self._lanes.pop(lane.webhook_id, None)
            self._wake.set()  # work may have arrived for this lane while it was held

    def _release_lane(self, webhook_id: str, recent: list[float]) -> None:
        with self.svc.db.transaction() as session:
            queue.release_lane(
                session, webhook_id=webhook_id, worker_id=self.worker_id, recent_sends=recent
            )

    async def _drain_lane(self, lane: Lane, rate: ChannelRate) -> None:
        url: str | None = None
        while not self._stopping.is_set():
            now = self.clock()

            def take(now: datetime = now) -> list[Work]:
                with self.svc.db.transaction() as session:
                    return queue.take_batch(
                        session,
                        lane=lane,
                        worker_id=self.worker_id,
                        now=now,
                        lease=self.lease,
                        limit=BATCH,
                    )

            batch = await self._db(take)
            if not batch:
                return
            if url is None:
                url = await self._decrypt(lane, batch)
                if url is None:
                    return
            for index, work in enumerate(batch):
                if self._stopping.is_set():
                    await self._give_back(batch[index:])
                    return
                completion = await self._send(work, url, rate)
                if completion.channel_paused_until or completion.webhook_disabled:
                    # The channel is resting (429) or gone: hand back the rest of the batch.
                    await self._give_back(batch[index + 1 :])
                    return

    async def _decrypt(self, lane: Lane, batch: list[Work]) -> str | None:
        """The URL, in memory only for this lane's run; on failure the batch waits."""
        try:
            return self.svc.keyring.decrypt(
                lane.url_ciphertext, webhook_url_aad(lane.workspace_id, lane.webhook_id)
            )
        except DecryptionError as exc:
            log.error("webhook %s: %s", lane.webhook_id, exc)
            reason = f"The stored webhook URL cannot be read; deliveries are waiting. {exc}"
        await self._give_back(batch)
        until = self.clock() + timedelta(seconds=KEY_PROBLEM_PAUSE_SECONDS)

        def hold() -> None:
            with self.svc.db.transaction() as session:
                queue.hold_lane(session, webhook_id=lane.webhook_id, until=until, reason=reason)

        await self._db(hold)
        return None

    async def _give_back(self, works: list[Work]) -> None:
        if not works:
            return

        def give_back() -> None:
            with self.svc.db.transaction() as session:
                queue.release(
                    session, delivery_ids=[w.delivery_id for w in works], worker_id=self.worker_id
                )

        await self._db(give_back)

    async def _send(self, work: Work, url: str, rate: ChannelRate) -> queue.Completion:
        wait = rate.wait_seconds(time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        started = self.clock()
        assert self._http is not None
        answer = await post_message(
            self._http,
            url,
            work.message,
            timeout_seconds=self.settings.delivery_timeout_seconds,
        )
        rate.record(time.time())
        TEAMS_LATENCY.observe(answer.latency_ms / 1000)
        completion = await self._db(lambda: self._complete(work, answer, started))
        self._count(completion.status)
        if not answer.ok:
            log.info(
                "delivery %s to webhook %s: %s (%s)",
                work.delivery_id,
                work.webhook_id,
                answer.error_kind,
                completion.status,
            )
        return completion

    def _complete(self, work: Work, answer: TeamsAnswer, started: datetime) -> queue.Completion:
        with self.svc.db.transaction() as session:
            return queue.complete(
                session,
                work=work,
                answer=answer,
                started_at=started,
                now=self.clock(),
                policy=self.policy,
                worker_id=self.worker_id,
                auto_disable_after=self.settings.auto_disable_after_removed,
            )

    def _count(self, status: str) -> None:
        DELIVERY_ATTEMPTS.labels("retry" if status == "pending" else status).inc()
        self.stats.sent += 1
        if status == "delivered":
            self.stats.delivered += 1
        elif status == "pending":
            self.stats.retried += 1
        else:
            self.stats.dead_lettered += 1

    # -- plumbing --------------------------------------------------------------------------

    async def _db(self, work: Callable[[], T]) -> T:
        # The database layer is synchronous; a thread keeps the event loop free for sending.
        return await asyncio.to_thread(work)

    async def _listen(self) -> None:
        """PostgreSQL LISTEN: wake as soon as an intake commits deliveries."""
        import psycopg

        from ticketmate.db import normalise_database_url
        from ticketmate.routing.router import NOTIFY_CHANNEL

        url = normalise_database_url(self.settings.database_url).replace(
            "postgresql+psycopg://", "postgresql://"
        )
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.set()  # anything queued while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "LISTEN connection lost (%s); polling until it is back", type(exc).__name__
                )
                await asyncio.sleep(min(self.settings.worker_poll_seconds, 5))


def threading_ident_is_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
