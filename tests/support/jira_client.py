"""A client that sends webhooks as Jira Cloud does: signed, each delivery under one
`X-Atlassian-Webhook-Identifier`, retried with the same identifier on 408/409/425/429/5xx,
on connection failures and on timeouts. It records every answer, so a test can tell which
deliveries Jira would consider done (a 2xx was received) and which it would give up on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.factories import MadeWorkspace
from ticketmate.jira.signature import body_signature

RETRIED = {408, 409, 425, 429} | set(range(500, 600))


@dataclass
class JiraDelivery:
    """One webhook delivery and what each try of it met: a status, "timeout" or "error"."""

    identifier: str
    body: bytes
    answers: list[int | str] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(isinstance(a, int) and 200 <= a < 300 for a in self.answers)

    @property
    def refused(self) -> bool:
        """Answered with a status Jira does not retry and that is not a success."""
        return any(isinstance(a, int) and a not in RETRIED and a >= 300 for a in self.answers)


def issue_created_body(key: str, project: str = "DEMO", summary: str = "Something broke") -> bytes:
    """A small but complete `jira:issue_created` body, as Jira Cloud sends it."""
    number = key.rsplit("-", 1)[-1]
    body: dict[str, Any] = {
        "timestamp": 1_764_000_000_000,
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "user": {"displayName": "Alice", "accountId": "557058:alice"},
        "issue": {
            "id": number,
            "self": f"https://example.atlassian.net/rest/api/2/issue/{number}",
            "key": key,
            "fields": {
                "summary": summary,
                "project": {"key": project, "name": project.title()},
                "issuetype": {"name": "Bug"},
                "status": {"name": "To Do"},
                "priority": {"name": "High"},
            },
        },
    }
    return json.dumps(body).encode()


class JiraSender:
    """Sends deliveries to `/api/webhooks/jira` of whatever `base_url()` names at the time
    (a restarted service, one of several behind a balancer)."""

    def __init__(
        self,
        base_url: Callable[[], str],
        workspace: MadeWorkspace,
        *,
        attempts: int = 6,
        timeout_seconds: float = 10.0,
        backoff_seconds: float = 0.2,
        per_second: float | None = None,
    ) -> None:
        self.base_url = base_url
        # Jira's own pace, when a test needs the burst to last (a kill must land inside it
        # however fast the intake is); None sends as fast as the connections allow.
        self.per_second = per_second
        self.workspace = workspace
        self.attempts = attempts  # the first try and five retries
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.backoff_seconds = backoff_seconds

    def deliveries(self, bodies: list[bytes]) -> list[JiraDelivery]:
        return [JiraDelivery(str(uuid.uuid4()), body) for body in bodies]

    def send(self, deliveries: list[JiraDelivery], concurrency: int = 16) -> list[JiraDelivery]:
        asyncio.run(self._send_all(deliveries, concurrency))
        return deliveries

    async def _send_all(self, deliveries: list[JiraDelivery], concurrency: int) -> None:
        queue: asyncio.Queue[JiraDelivery] = asyncio.Queue()
        for delivery in deliveries:
            queue.put_nowait(delivery)
        # force_close: a new connection per try, so a restarted server is met afresh.
        connector = aiohttp.TCPConnector(force_close=True, limit=concurrency)
        loop = asyncio.get_running_loop()
        next_start = loop.time()
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session:

            async def lane() -> None:
                nonlocal next_start
                while not queue.empty():
                    delivery = queue.get_nowait()
                    if self.per_second:
                        start = max(next_start, loop.time())
                        next_start = start + 1 / self.per_second
                        await asyncio.sleep(start - loop.time())
                    await self._deliver(session, delivery)

            await asyncio.gather(*(lane() for _ in range(concurrency)))

    async def _deliver(self, session: aiohttp.ClientSession, delivery: JiraDelivery) -> None:
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_seconds * attempt)
            answer = await self._try(session, delivery, attempt)
            delivery.answers.append(answer)
            if isinstance(answer, int) and answer not in RETRIED:
                return

    async def _try(
        self, session: aiohttp.ClientSession, delivery: JiraDelivery, attempt: int
    ) -> int | str:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Hub-Signature": body_signature(self.workspace.jira.secret, delivery.body),
            "X-Atlassian-Webhook-Identifier": delivery.identifier,
            "User-Agent": "Atlassian Webhook HTTP Client",
        }
        if attempt:
            headers["X-Atlassian-Webhook-Retry"] = str(attempt)
        url = f"{self.base_url()}/api/webhooks/jira"
        try:
            async with session.post(
                url, params={"workspace": self.workspace.slug}, data=delivery.body, headers=headers
            ) as answer:
                await answer.read()
                return answer.status
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "error"
