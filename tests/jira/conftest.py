"""Fixtures of the Jira intake tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.orm import Session

from tests.support.factories import MadeUser, MadeWorkspace, make_user, make_workspace
from ticketmate.jira import hooks
from ticketmate.jira.events import JiraEvent
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services


@pytest.fixture
def workspace(svc: Services) -> MadeWorkspace:
    return make_workspace(svc, "acme")


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


@dataclass
class RoutingSpy:
    """Stands in for the router: records each call and enqueues `deliveries` deliveries."""

    deliveries: int = 2
    calls: list[tuple[str, JiraEvent]] = field(default_factory=list)
    in_transaction: list[bool] = field(default_factory=list)
    woken: int = 0

    def route_event(
        self, session: Session, svc: Services, record: JiraEventRecord, envelope: JiraEvent
    ) -> int:
        # The record must already be in the same transaction, flushed, when routing runs.
        self.in_transaction.append(session.get(JiraEventRecord, record.id) is record)
        self.calls.append((record.id, envelope))
        return self.deliveries

    def after_commit(self, svc: Services) -> None:
        self.woken += 1


@pytest.fixture
def routing(monkeypatch: pytest.MonkeyPatch) -> RoutingSpy:
    spy = RoutingSpy()
    monkeypatch.setattr(hooks, "route_event", spy.route_event)
    monkeypatch.setattr(hooks, "after_commit", spy.after_commit)
    return spy
