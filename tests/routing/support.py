"""Events and subscriptions for the routing tests: the captured payloads, read by the real
transformer, and a workspace full of subscriptions made through the services."""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.teams import ADMIN, make_subscription, make_webhook
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import Transformed, transform
from ticketmate.state import Services
from ticketmate.teams import subscriptions, webhooks

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
EVENT_TYPES = [t.value for t in EventType]

# Small vocabularies, with case differences, so that subscriptions and events meet often.
PROJECTS = ["TES", "tes", "DEMO", "Ops", "OPS"]
ISSUE_TYPES = ["Bug", "bug", "Story", "Task", "Epic"]
STATUSES = ["To Do", "to do", "In Progress", "Done", "done", "Closed"]
PRIORITIES = ["High", "high", "Medium", "Highest"]
LABELS = ["urgent", "Urgent", "backend", "ui"]
COMPONENTS = ["API", "api", "Web", "billing"]
VOCABULARY = {
    "projects": PROJECTS,
    "issue_types": ISSUE_TYPES,
    "statuses": STATUSES,
    "priorities": PRIORITIES,
    "labels": LABELS,
    "components": COMPONENTS,
}


@cache
def fixture_events() -> tuple[tuple[str, JiraEvent], ...]:
    """(file name, envelope) of every captured payload the transformer routes."""
    found = []
    for path in sorted(PAYLOADS.glob("*.json")):
        outcome = transform(json.loads(path.read_bytes()))
        if isinstance(outcome, Transformed):
            found.append((path.name, outcome.envelope))
    return tuple(found)


def random_filters(rng: random.Random) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for name, values in VOCABULARY.items():
        if rng.random() < 0.35:
            filters[name] = rng.sample(values, rng.randint(1, 2))
    return filters


def subscribed_workspace(
    svc: Services, workspace_id: str, sink_url: str, count: int, seed: int = 7
) -> list[str]:
    """`count` subscriptions of random event types and filters on four webhooks, some of
    them disabled, one webhook disabled. Returns the subscription ids."""
    rng = random.Random(seed)
    hooks = [
        make_webhook(svc, workspace_id, f"#ch{n}", f"{sink_url}/workflows/ch{n}") for n in range(4)
    ]
    ids = []
    for _ in range(count):
        ids.append(
            make_subscription(
                svc,
                workspace_id,
                rng.choice(hooks),
                rng.choice(EVENT_TYPES),
                enabled=rng.random() > 0.15,
                **random_filters(rng),
            )
        )
    with svc.db.transaction() as session:
        webhooks.update_webhook(
            session,
            svc.keyring,
            workspace_id,
            hooks[3],
            webhooks.WebhookUpdate(enabled=False),
            allow_loopback=True,
            actor=ADMIN,
        )
    return ids


def set_filters(svc: Services, workspace_id: str, subscription_id: str, **filters: Any) -> None:
    with svc.db.transaction() as session:
        subscriptions.update_subscription(
            session,
            workspace_id,
            subscription_id,
            subscriptions.SubscriptionUpdate(filters=subscriptions.SubscriptionFilters(**filters)),
            actor=ADMIN,
        )
