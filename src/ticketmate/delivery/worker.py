"""TeamsDeliveryWorker: sends queued deliveries to Teams, channel by channel.

How it runs:
- Wakes at once when work is queued: an in-process signal when it shares the process with the
  API, PostgreSQL LISTEN/NOTIFY across processes. It also polls every
  TICKETMATE_WORKER_POLL_SECONDS, which is what guarantees pickup if a signal is missed.
- Claims channel lanes with their first due deliveries in one transaction (delivery/queue.py)
  and runs one task per lane; other lanes run side by side — a slow or throttled channel
  holds back only itself. `concurrency` bounds the requests in flight; a worker holds up to
  LANES_PER_REQUEST lanes per request slot, claiming one only for a slot no held lane needs.
- What Teams answered is handed to the completion writer (delivery/completions.py), which
  records many answers per transaction. Every database call of the hot path (claim, top-up,
  outcomes, release) goes through the asynchronous engine: no thread per card. What stays
  synchronous (the retention purge) runs on this worker's own small executor.

Guarantees kept by the send loop (one lane task):
- Order: one request at a time per channel; first attempts go in the order they were queued.
- Rate: at most TICKETMATE_CHANNEL_RATE_PER_SECOND requests per rolling second reach the
  channel, across workers (ChannelRate; the last answers' times are stored with the lane when
  it is released, and the next holder starts from them).
- The lane decides from the answer in memory, not from the commit: a 429 (or a connector's 200
  quoting one) rests the channel at once; the rest of its batch is handed back. After a
  "removed" answer the lane waits for that outcome's commit to know whether the webhook was
  disabled.
- A lane is released only once all its outcomes have committed (so its pause, its health and
  its recent sends are in place before anyone else can claim it). If an outcome cannot be
  written, the lane stops and keeps its lease: its deliveries are sent again when it runs out.
- The webhook URL is decrypted only in memory, just before the request.
- On stop it claims nothing new, finishes the requests in flight, writes their outcomes, hands
  back what it took but did not send, and releases its lanes. A worker that dies loses
  nothing: its leases run out and another worker takes the work again (at-least-once).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import aiohttp
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ticketmate.db import AsyncDatabase
from ticketmate.delivery import digests, queue
from ticketmate.delivery.completions import CompletionFailed, CompletionWriter
from ticketmate.delivery.queue import Completion, Lane, Work
from ticketmate.delivery.retry import RetryPolicy
from ticketmate.metrics import DELIVERY_ATTEMPTS, TEAMS_LATENCY
from ticketmate.security.crypto import DecryptionError
from ticketmate.state import Services
from ticketmate.teams.client import new_http_session, post_message, with_url_family
from ticketmate.teams.webhooks import webhook_url_aad
from ticketmate.timeutil import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

BATCH = 4  # the lease covers this many requests timing out one after another, plus slack
TAKE = 50  # deliveries a lane takes (or tops up) at a time
# Lanes held per request slot at most. A lane resting for its channel's rate limit needs no
# request slot, so a worker holds more lanes than it has slots: 500 channels at 4/s each need
# 2,000 requests a second but only a few in flight. It claims a new lane only for a slot that
# no held lane is using or waiting for (see _claim): when the client side is the limit (the
# rate lifted, a slow Teams), it holds about `concurrency` lanes and leaves the rest to the
# other workers, as before.
LANES_PER_REQUEST = 8
# After a claim that took all it could, look again this soon: lanes that have since gone to
# rest free their slots for channels still waiting for a holder.
RECLAIM_SECONDS = 0.1
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

    Times are kept on the monotonic clock, so that a step of the wall clock (NTP) while the
    lane is held cannot shorten a wait; they cross to the next holder, which may be another
    process or host, as wall-clock times (`answered_at`, `wall_times`).
    """

    def __init__(self, limit: int, answered_at: list[float]) -> None:
        self.limit = limit
        shift = time.monotonic() - time.time()
        self.answered: deque[float] = deque((t + shift for t in answered_at[-limit:]), maxlen=limit)

    def wait_seconds(self, now: float) -> float:
        """How long to wait before the next request; `now` from time.monotonic()."""
        if len(self.answered) < self.limit:
            return 0.0
        return max(0.0, self.answered[0] + WINDOW_SECONDS - now)

    def record(self, answered_at: float) -> None:
        """An answer (or the end of a request that got none) at time.monotonic()."""
        self.answered.append(answered_at)

    def wall_times(self) -> list[float]:
        shift = time.time() - time.monotonic()
        return [t + shift for t in self.answered]


def _in_session(connection: Connection, work: Callable[[Session], T]) -> T:
    # queue.py is written against a Session; this one runs on the async connection's own
    # transaction (SQLAlchemy's greenlet bridge: no thread, the I/O stays on the event loop).
    with Session(bind=connection) as session:
        found = work(session)
        session.flush()
        return found


class _LaneRun:
    """What one lane task holds: the deliveries taken and not yet sent, and the outcomes
    handed to the writer and not yet known to be written."""

    def __init__(self, lane: Lane, first: list[Work], rate: ChannelRate) -> None:
        self.lane = lane
        self.rate = rate
        self.taken: deque[Work] = deque(first)
        self.unwritten: list[asyncio.Future[Completion]] = []
        self.released = False  # the last take found nothing due and released the lane with it
        self.renewed = time.monotonic()

    async def settle(self) -> bool:
        """Wait until every outcome handed in is written; False if any could not be."""
        results = await asyncio.gather(*self.unwritten, return_exceptions=True)
        self.unwritten.clear()
        return not any(isinstance(r, BaseException) for r in results)

    def any_failed(self) -> bool:
        pending = []
        failed = False
        for done in self.unwritten:
            if not done.done():
                pending.append(done)
            elif done.exception() is not None:
                failed = True
        self.unwritten = pending
        return failed


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
        self.concurrency = max(1, concurrency)  # requests in flight at most
        self.max_lanes = self.concurrency * LANES_PER_REQUEST
        self.worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[:64]
        )
        self.clock = clock
        self.policy = policy or RetryPolicy(tuple(self.settings.retry_schedule_seconds))
        timeout = self.settings.delivery_timeout_seconds
        # Long enough for a few requests to time out one after another, plus slack; a lane
        # renews it (and its in-flight deliveries' lease) as it goes.
        lease_seconds = self.settings.delivery_lease_seconds or (
            BATCH * (timeout + WINDOW_SECONDS) + 30
        )
        self.lease = timedelta(seconds=lease_seconds)
        self.stats = WorkerStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._adb: AsyncDatabase | None = None
        self._writer: CompletionWriter | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._requests: asyncio.Semaphore | None = None
        self._last_purge = 0.0
        self._last_digests = 0.0
        self._resting = 0  # held lanes sleeping for their channel's rate limit
        self._maybe_more = False  # the last claim was capped: more lanes may be due
        self._reclaim: asyncio.TimerHandle | None = None

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
        self._requests = asyncio.Semaphore(self.concurrency)
        # SQLite has one writer at a time: one connection, and the worker's statements queue
        # in the pool instead of spinning on the file lock. PostgreSQL: a small fixed pool.
        sqlite = self.svc.db.dialect == "sqlite"
        self._adb = AsyncDatabase(
            self.settings,
            pool_size=1 if sqlite else min(self.settings.database_pool_size, 8),
            application_name="ticketmate-worker",
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-sync")
        self._writer = CompletionWriter(
            self._adb,
            worker_id=self.worker_id,
            policy=self.policy,
            auto_disable_after=self.settings.auto_disable_after_removed,
            clock=self.clock,
            on_written=self._count,
        )
        self._writer.start()
        listener = None
        if not once and self.svc.db.dialect == "postgresql":
            listener = asyncio.create_task(self._listen(), name="delivery-listen")
        try:
            async with new_http_session(connections_per_host=self.concurrency) as http:
                self._http = http
                try:
                    await self._loop_until_done(once)
                finally:
                    self._stopping.set()
                    if self._lanes:
                        await asyncio.gather(*self._lanes.values(), return_exceptions=True)
                    self._http = None
        finally:
            await self._writer.close()
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await self._adb.dispose()
            self._executor.shutdown(wait=False)
        return self.stats

    async def _loop_until_done(self, once: bool) -> None:
        poll = self.settings.worker_poll_seconds
        while not self._stopping.is_set():
            self._wake.clear()
            await self._digests()
            claimed = await self._claim()
            if once and not claimed and not self._lanes:
                return
            if not once:
                await self._housekeeping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def _session(self, work: Callable[[Session], T]) -> T:
        """One transaction on the async engine, running queue.py's Session code."""
        assert self._adb is not None
        async with self._adb.transaction() as connection:
            return await connection.run_sync(_in_session, work)

    def _free_lanes(self) -> int:
        """Lanes to claim now: within max_lanes, and one per request slot that no held lane is
        using or about to use (a lane is busy unless it rests for its rate limit)."""
        busy = len(self._lanes) - self._resting
        return min(self.max_lanes - len(self._lanes), self.concurrency - busy)

    def _reclaim_soon(self) -> None:
        if self._reclaim is None and self._loop is not None:

            def wake() -> None:
                self._reclaim = None
                self._wake.set()

            self._reclaim = self._loop.call_later(RECLAIM_SECONDS, wake)

    async def _claim(self) -> int:
        free = self._free_lanes()
        if free <= 0:
            if self._maybe_more:
                self._reclaim_soon()
            return 0
        now = self.clock()
        exclude = frozenset(self._lanes)

        def claim(session: Session) -> list[tuple[Lane, list[Work]]]:
            queue.skip_orphans(session, now=now)
            return queue.claim_lanes_with_work(
                session,
                worker_id=self.worker_id,
                now=now,
                lease=self.lease,
                limit=free,
                take=TAKE,
                exclude=exclude,
            )

        try:
            claimed = await self._session(claim)
        except Exception:
            log.exception("claiming deliveries failed; trying again at the next poll")
            return 0
        for lane, first in claimed:
            task = asyncio.create_task(self._run_lane(lane, first), name=f"lane-{lane.webhook_id}")
            self._lanes[lane.webhook_id] = task
        self._maybe_more = len(claimed) == free
        if self._maybe_more:
            self._reclaim_soon()
        return len(claimed)

    async def _digests(self) -> None:
        """Queue the digests whose time has come (delivery/digests.py), once a poll interval;
        a digest queued is claimed at once."""
        if time.monotonic() - self._last_digests < min(self.settings.worker_poll_seconds, 5):
            return
        self._last_digests = time.monotonic()
        now = self.clock()
        try:
            made = await self._session(lambda session: digests.queue_due_digests(session, now=now))
        except Exception:
            log.exception("queuing digests failed; trying again at the next poll")
            return
        if made:
            log.info("queued %d digest(s)", len(made))

    async def _housekeeping(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = time.monotonic()
        before = self.clock() - timedelta(days=self.settings.retention_days)

        def purge() -> int:
            with self.svc.db.transaction() as session:
                return queue.purge_finished(session, before=before)

        try:
            purged = await asyncio.get_running_loop().run_in_executor(self._executor, purge)
            if purged:
                log.info("purged %d finished deliveries and events past retention", purged)
                self._last_purge = 0.0  # more may be waiting: purge the next batch soon
        except Exception:
            log.exception("purging old deliveries failed")

    # -- one channel -----------------------------------------------------------------------

    async def _run_lane(self, lane: Lane, first: list[Work]) -> None:
        run = _LaneRun(
            lane, first, ChannelRate(self.settings.channel_rate_per_second, lane.recent_sends)
        )
        release = True
        try:
            release = await self._drain_lane(run)
        except Exception:
            log.exception("delivering to webhook %s failed; its lease will expire", lane.webhook_id)
        finally:
            try:
                written = await run.settle()
                if release and written and not run.released:
                    await self._release_lane(run)
            except Exception:
                log.exception("releasing lane %s failed; its lease will expire", lane.webhook_id)
            self._lanes.pop(lane.webhook_id, None)
            self._wake.set()  # work may have arrived for this lane while it was held

    async def _release_lane(self, run: _LaneRun) -> None:
        """Hand back what was taken and not sent, and the lane with its last answers' times."""
        ids = [w.delivery_id for w in run.taken]
        recent = run.rate.wall_times()
        run.taken.clear()

        def release(session: Session) -> None:
            queue.release(session, delivery_ids=ids, worker_id=self.worker_id)
            queue.release_lane(
                session,
                webhook_id=run.lane.webhook_id,
                worker_id=self.worker_id,
                recent_sends=recent,
            )

        await self._session(release)

    async def _top_up(self, run: _LaneRun) -> bool | None:
        """Take more of the lane's due deliveries, renewing the leases: True if more were
        taken, False if none is due, None if the lane was lost (taken over after its lease ran
        out, or the webhook disabled)."""
        now = self.clock()
        want = max(0, TAKE - len(run.taken))

        def take(session: Session) -> list[Work] | None:
            return queue.top_up(
                session,
                lane=run.lane,
                worker_id=self.worker_id,
                now=now,
                lease=self.lease,
                limit=want,
            )

        run.renewed = time.monotonic()
        more = await self._session(take)
        if more is None:
            return None
        run.taken.extend(more)
        return bool(more)

    async def _take_or_release(self, run: _LaneRun) -> bool:
        """With everything sent written: take the lane's next due deliveries, or release the
        lane in the same transaction when none is due. True if more were taken."""
        now = self.clock()
        recent = run.rate.wall_times()

        def take(session: Session) -> list[Work] | None:
            return queue.take_or_release(
                session,
                lane=run.lane,
                worker_id=self.worker_id,
                now=now,
                lease=self.lease,
                limit=TAKE,
                recent_sends=recent,
            )

        run.renewed = time.monotonic()
        more = await self._session(take)
        if not more:
            # [] released the lane; None (lost) leaves nothing of ours to release.
            run.released = True
            return False
        run.taken.extend(more)
        return True

    async def _drain_lane(self, run: _LaneRun) -> bool:
        """Send the lane's deliveries; True when the lane is to be released."""
        url: str | None = None
        renew_after = self.lease.total_seconds() / 3
        while not self._stopping.is_set():
            if run.any_failed():
                return False  # an outcome could not be written: keep the lease, let it expire
            if not run.taken:
                # What was sent is written before more is taken: a lane never has more than
                # one take's outcomes unwritten, and a failed write stops it here.
                if not await run.settle():
                    return False
                if not await self._take_or_release(run):
                    return True
            elif time.monotonic() - run.renewed > renew_after and await self._top_up(run) is None:
                # Another holder has the channel now: not one more request from here, or the
                # two of us would share its rate. What is left is handed back.
                return True
            if url is None:
                url = await self._decrypt(run)
                if url is None:
                    return True
            work = run.taken.popleft()
            done = await self._send(work, url, run)
            if done is None:
                continue
            answer_throttled, removed = done
            if answer_throttled:
                return True  # the channel rests (429): the rest is handed back with the lane
            if removed:
                # Whether this was the answer that disables the webhook is known once written.
                try:
                    completion = await run.unwritten[-1]
                except CompletionFailed:
                    return False
                if completion.webhook_disabled:
                    return True
        return True

    async def _decrypt(self, run: _LaneRun) -> str | None:
        """The URL, in memory only for this lane's run; on failure the batch waits."""
        lane = run.lane
        try:
            return self.svc.keyring.decrypt(
                lane.url_ciphertext, webhook_url_aad(lane.workspace_id, lane.webhook_id)
            )
        except DecryptionError as exc:
            log.error("webhook %s: %s", lane.webhook_id, exc)
            reason = f"The stored webhook URL cannot be read; deliveries are waiting. {exc}"
        until = self.clock() + timedelta(seconds=KEY_PROBLEM_PAUSE_SECONDS)

        def hold(session: Session) -> None:
            queue.hold_lane(session, webhook_id=lane.webhook_id, until=until, reason=reason)

        await self._session(hold)
        return None

    async def _send(self, work: Work, url: str, run: _LaneRun) -> tuple[bool, bool] | None:
        """One request; its outcome goes to the writer. (throttled, removed) from the answer."""
        wait = run.rate.wait_seconds(time.monotonic())
        if wait > 0:
            self._resting += 1
            try:
                # A timer may fire a little early (uvloop counts whole milliseconds from the
                # loop's cached time), and a request sent 1 ms early is a fifth one in a second
                # at the receiver: sleep again until the clock says the second is over.
                while wait > 0:
                    await asyncio.sleep(wait)
                    wait = run.rate.wait_seconds(time.monotonic())
            finally:
                self._resting -= 1
        started = self.clock()
        assert self._http is not None
        assert self._writer is not None
        assert self._requests is not None
        async with self._requests:
            try:
                answer = await post_message(
                    self._http,
                    url,
                    work.message,
                    timeout_seconds=self.settings.delivery_timeout_seconds,
                )
            finally:
                # Counted however the request ended: one that failed in a way post_message
                # does not expect may still have reached Teams.
                run.rate.record(time.monotonic())
        TEAMS_LATENCY.observe(answer.latency_ms / 1000)
        # A retired URL's refusal names the retirement (in last_error and the webhook's health).
        answer = with_url_family(answer, run.lane.url_family)
        run.unwritten.append(await self._writer.submit(work, answer, started))
        if answer.ok:
            return None
        log.info(
            "delivery %s to webhook %s: %s (%s)",
            work.delivery_id,
            work.webhook_id,
            answer.error_kind,
            answer.outcome,
            extra={"delivery_id": work.delivery_id},
        )
        return queue.is_throttled(answer), answer.removed

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
