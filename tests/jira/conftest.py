"""Fixtures of the Jira intake tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from tests.support.factories import MadeUser, MadeWorkspace, make_user, make_workspace
from tests.support.teams import make_webhook
from ticketmate.delivery.embedded import WAKE_HOOK
from ticketmate.jira import intake_writer
from ticketmate.jira.events import JiraEvent
from ticketmate.routing import router
from ticketmate.routing.index import Match
from ticketmate.state import Services


@pytest.fixture
def workspace(svc: Services) -> MadeWorkspace:
    return make_workspace(svc, "acme")


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


@dataclass
class RoutingSpy:
    """Watches routing: records each event the intake routes and has it queue `deliveries`
    real deliveries, one per real webhook of the workspace, whatever its subscriptions.

    The rows come from the router's own `plan_deliveries`, so they are stored in the intake's
    transaction exactly as routed ones are. `woken` counts the embedded worker's wake-ups.
    """

    webhook_ids: list[str]
    deliveries: int = 2
    calls: list[tuple[str, JiraEvent]] = field(default_factory=list)
    woken: int = 0

    def plan_deliveries(
        self,
        workspace_id: str,
        event_id: str,
        event: JiraEvent,
        matches: list[Match],
        now: datetime,
    ) -> list[dict[str, Any]]:
        self.calls.append((event_id, event))
        pretend = [
            Match(f"sub-{n}", "issue_created", webhook_id, f"#spy-{n}")
            for n, webhook_id in enumerate(self.webhook_ids[: self.deliveries])
        ]
        return router.plan_deliveries(workspace_id, event_id, event, pretend, now)

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def routing(monkeypatch: pytest.MonkeyPatch, svc: Services, workspace: MadeWorkspace) -> RoutingSpy:
    hooks = [
        make_webhook(svc, workspace.id, f"#spy-{n}", f"http://127.0.0.1:9/spy-{n}")
        for n in range(2)
    ]
    spy = RoutingSpy(hooks)
    monkeypatch.setattr(intake_writer, "plan_deliveries", spy.plan_deliveries)
    svc.extras[WAKE_HOOK] = spy.wake
    return spy
