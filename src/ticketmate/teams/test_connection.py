"""Test Connection: send a sample Adaptive Card to a webhook and explain Teams' answer.

The test goes through the delivery worker's own client (teams/client.py): the same envelope,
the same timeout, no redirects followed, the same reading of Teams' answers — so a passing
test means real deliveries will be accepted too. The result is audit-logged, and a saved
webhook's health fields are updated as a delivery would update them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy.orm import Session

from ticketmate.audit.service import Actor, RequestInfo, record
from ticketmate.models import TeamsWebhook
from ticketmate.security.urls import url_family_of
from ticketmate.teams.client import TeamsAnswer, post_message, with_url_family
from ticketmate.teams.webhooks import WEBHOOK_TARGET
from ticketmate.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)

TEST_MESSAGE_TITLE = "Ticket MATE test message"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

# What to do next after a failed test, by the client's error kind (its message says what
# happened; a test is run by a person who wants the next step).
_NEXT_STEP = {
    "throttled": "Wait a minute, then test again.",
    "timeout": "Check the URL, or test again in a few minutes.",
    "http": "Test again in a few minutes; if it keeps failing, check the URL.",
    "connect": "Check the URL's host, and that this server can reach Microsoft Teams.",
}


@dataclass(frozen=True)
class ConnectionTestResult:
    """What the API answers: `status_code` is None when no answer came."""

    ok: bool
    status_code: int | None
    latency_ms: int
    message: str
    error_kind: str | None = None
    removed: bool = False


def sample_card_message(
    workspace_name: str, *, sent_at: datetime, channel_name: str | None = None
) -> dict[str, Any]:
    """The Teams message envelope with the sample card, exactly as deliveries send cards."""
    facts = [{"title": "Workspace", "value": workspace_name}]
    if channel_name:
        facts.append({"title": "Channel", "value": channel_name})
    facts.append({"title": "Sent at", "value": rfc3339(sent_at) or ""})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": TEST_MESSAGE_TITLE,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": "This channel is connected to Ticket MATE. Jira notifications will "
            "appear here as cards like this one.",
            "wrap": True,
        },
        {"type": "FactSet", "facts": facts},
    ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                # Workflows rejects the message without contentUrl, even null.
                "contentUrl": None,
                "content": {
                    "$schema": ADAPTIVE_CARD_SCHEMA,
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def message_bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def explain(answer: TeamsAnswer) -> ConnectionTestResult:
    """The client's reading of Teams' answer, with the next step a person should take."""
    message = answer.message
    next_step = _NEXT_STEP.get(answer.error_kind or "")
    if not answer.ok and next_step:
        message = f"{message} {next_step}"
    return ConnectionTestResult(
        ok=answer.ok,
        status_code=answer.status_code,
        latency_ms=answer.latency_ms,
        message=message,
        error_kind=answer.error_kind,
        removed=answer.removed,
    )


async def send_test_message(
    http: aiohttp.ClientSession,
    url: str,
    *,
    workspace_name: str,
    timeout_seconds: float,
    channel_name: str | None = None,
    url_family: str | None = None,
) -> ConnectionTestResult:
    """POST the sample card to `url` and explain the answer; never raises for network trouble.
    `url_family`: a saved webhook's (else the URL's own)."""
    body = message_bytes(
        sample_card_message(workspace_name, sent_at=utcnow(), channel_name=channel_name)
    )
    answer = await post_message(http, url, body, timeout_seconds=timeout_seconds)
    # As for deliveries: a retired URL's refusal names the retirement.
    return explain(with_url_family(answer, url_family or url_family_of(url)))


def update_health(webhook: TeamsWebhook, result: ConnectionTestResult) -> None:
    """A test counts for the webhook's health as a delivery attempt does."""
    now = utcnow()
    if result.ok:
        webhook.last_success_at = now
        webhook.consecutive_failures = 0
        webhook.consecutive_removed = 0
    else:
        webhook.last_failure_at = now
        webhook.last_failure_reason = result.message
        webhook.consecutive_failures = (webhook.consecutive_failures or 0) + 1


def record_test(
    session: Session,
    *,
    workspace_id: str,
    result: ConnectionTestResult,
    url_kind: str,
    url_masked: str,
    webhook: TeamsWebhook | None,
    actor: Actor,
    request: RequestInfo | None = None,
) -> None:
    """Audit `teams.webhook.tested` with the outcome; for a saved webhook, update its health."""
    details: dict[str, Any] = {
        "ok": result.ok,
        "status_code": result.status_code,
        "error_kind": result.error_kind,
        "latency_ms": result.latency_ms,
        "url_kind": url_kind,
        "url_masked": url_masked,
        "saved": webhook is not None,
    }
    if webhook is not None:
        details["channel_name"] = webhook.channel_name
        update_health(webhook, result)
        session.flush()
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.webhook.tested",
        target_type=WEBHOOK_TARGET,
        target_id=webhook.id if webhook is not None else None,
        details=details,
        request=request,
    )
    log.info(
        "teams webhook test in workspace %s: ok=%s status=%s kind=%s",
        workspace_id,
        result.ok,
        result.status_code,
        result.error_kind,
    )
