"""A Teams channel whose connector was removed (410 Gone, as Microsoft answers for a deleted
connector) beside nine healthy channels, end to end: Jira events through the real intake, the
worker inside a real `ticketmate serve`, the local Teams stand-in.

The removed channel's cards are dead letters at once, never retried; after the configured
number of "removed" answers in a row its webhook is disabled (with the reason and an audit
entry), and nothing more is sent to it: what was still queued for it is skipped, and later
events no longer route to it. The healthy channels get every card, in the order the events
arrived, each within moments of its event: the events keep coming while the removed channel
fails, and it answers slowly, so that a healthy card waiting behind it would be visibly late.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from tests.reliability.conftest import size
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraSender, issue_created_body
from tests.support.processes import ServeProcess
from tests.support.teams import deliveries, make_subscription, make_webhook
from ticketmate.dev.teams_sink import Answer, Received, TeamsSink
from ticketmate.models import AuditEntry, IntegrationDelivery, TeamsWebhook
from ticketmate.state import Services

# Not the default (3): the count must come from TICKETMATE_AUTO_DISABLE_AFTER_REMOVED.
AFTER = 2
REMOVED_DELAY = 5.0  # seconds the removed channel takes to answer (under the 8 s timeout)
# Events are sent this far apart, under each channel's 4 per second, so that a card waits for
# nothing of its own channel; they span the removed channel's AFTER slow answers.
PACE = 0.5
# From an event's 202 to its card at a healthy channel: usually a few milliseconds; generous
# for a loaded machine, yet half of one slow answer of the removed channel.
LATENCY_BOUND = REMOVED_DELAY / 2
REMOVED_PATH = "/webhookb2/removed"
HEALTHY_PATHS = [f"/workflows/ok-{n}" for n in range(5)] + [
    f"/webhookb2/ok-{n}" for n in range(5, 9)
]
FINAL = {"delivered", "dead_letter", "skipped"}
KEY = re.compile(rb"REL-(\d+)")


def card_numbers(received: list[Received]) -> list[int]:
    numbers = []
    for request in received:
        found = KEY.search(request.body)
        assert found is not None, request.body[:300]
        numbers.append(int(found.group(1)))
    return numbers


def wait_until_settled(svc: Services, workspace_id: str, sink: TeamsSink, timeout: float) -> None:
    """Until no delivery of the workspace is pending or in flight."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(d.status for d in deliveries(svc, workspace_id))
        if set(statuses) <= FINAL:
            return
        sent_to_removed = len(sink.received(REMOVED_PATH))
        assert time.monotonic() < deadline, (statuses, f"{sent_to_removed} sent to {REMOVED_PATH}")
        time.sleep(0.2)


def test_a_removed_channel_is_disabled_and_holds_back_none_of_nine_healthy_ones(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    events = size(20, 400)
    assert events * PACE >= AFTER * REMOVED_DELAY
    sink.set_default(REMOVED_PATH, Answer(410, "Gone", delay_seconds=REMOVED_DELAY))
    removed = make_webhook(svc, workspace.id, "removed", sink.url(REMOVED_PATH))
    make_subscription(svc, workspace.id, removed, "issue_created")
    healthy: dict[str, str] = {}
    for path in HEALTHY_PATHS:
        healthy[path] = make_webhook(svc, workspace.id, path.rsplit("/", 1)[1], sink.url(path))
        make_subscription(svc, workspace.id, healthy[path], "issue_created")

    with ServeProcess(
        database_url,
        tmp_path,
        worker=True,
        TICKETMATE_AUTO_DISABLE_AFTER_REMOVED=str(AFTER),
    ).start() as serve:
        sender = JiraSender(lambda: serve.url, workspace)
        # One at a time, so that the order they arrive in is known: REL-1 first.
        acknowledged: dict[int, float] = {}
        started = time.monotonic()
        for n in range(1, events + 1):
            time.sleep(max(0.0, started + (n - 1) * PACE - time.monotonic()))
            [sent] = sender.send(sender.deliveries([issue_created_body(f"REL-{n}")]))
            assert sent.answers == [202], (n, sent.answers)
            acknowledged[n] = time.monotonic()
        for path in HEALTHY_PATHS:
            sink.wait_for(events, path, timeout=60)
        # Once the events are in, the removed channel has at most its last answers to give.
        wait_until_settled(svc, workspace.id, sink, timeout=AFTER * REMOVED_DELAY + 15)
        log = serve.output()

    # Healthy channels: every card once, in the order of the events, each soon after its event
    # was acknowledged, while the removed channel was failing beside them.
    removed_requests = sink.received(REMOVED_PATH)
    assert len(removed_requests) == AFTER, [r.answered for r in removed_requests]
    assert removed_requests[-1].at < acknowledged[events], "the failures ended before the events"
    for path in HEALTHY_PATHS:
        received = sink.received(path)
        assert card_numbers(received) == list(range(1, events + 1)), path
        late = {
            n: round(request.at - acknowledged[n], 3)
            for n, request in zip(range(1, events + 1), received, strict=True)
            if request.at - acknowledged[n] > LATENCY_BOUND
        }
        assert not late, (path, late)

    by_webhook: dict[str | None, list[IntegrationDelivery]] = {}
    for delivery in deliveries(svc, workspace.id):
        by_webhook.setdefault(delivery.webhook_id, []).append(delivery)
    for path, hook in healthy.items():
        assert [d.status for d in by_webhook[hook]] == ["delivered"] * events, path
        assert all(d.attempt_count == 1 for d in by_webhook[hook]), path

    # The removed channel: the cards it was sent are dead letters after one attempt each, with
    # the reason; what was still queued when it was disabled is skipped, never sent; events
    # after that no longer route to it at all.
    sent_to_removed = card_numbers(removed_requests)
    dead = [d for d in by_webhook[removed] if d.status == "dead_letter"]
    assert sorted(int(str(d.issue_key).split("-")[1]) for d in dead) == sorted(sent_to_removed)
    for delivery in dead:
        assert delivery.attempt_count == 1, delivery.last_error
        assert delivery.last_status_code == 410
        assert "removed" in (delivery.last_error or ""), delivery.last_error
    others = [d for d in by_webhook[removed] if d.status != "dead_letter"]
    assert all(d.status == "skipped" and d.attempt_count == 0 for d in others), [
        (d.status, d.attempt_count) for d in others
    ]
    assert len(by_webhook[removed]) <= events

    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, removed)
        assert webhook is not None
        assert webhook.enabled is False
        assert webhook.consecutive_removed == AFTER
        assert webhook.disabled_reason is not None
        assert "410" in webhook.disabled_reason, webhook.disabled_reason
        assert f"{AFTER} times in a row" in webhook.disabled_reason, webhook.disabled_reason
        assert webhook.last_failure_reason is not None
        for path, hook in healthy.items():
            other = session.get(TeamsWebhook, hook)
            assert other is not None
            assert other.enabled, path
            assert other.consecutive_failures == 0, path
            assert other.last_success_at is not None, path
        disabled = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "teams.webhook.auto_disabled")
            )
        )
        assert [(e.target_id, e.actor_type) for e in disabled] == [(removed, "system")]
        assert disabled[0].details["status_code"] == 410
        assert disabled[0].details["consecutive_removed"] == AFTER
    assert "Traceback" not in log, log[-5000:]
