"""A delivery to a retired logic.azure.com URL that Teams refuses says why: the retirement,
not only the status. The real worker against the local stand-in (on 127.0.0.1), the
webhook's family set to logic_apps in the database as migration 0007 would for such a URL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import DeliveryAttempt, TeamsWebhook
from ticketmate.state import Services

RETIREMENT = "Microsoft stopped honouring those on 30 November 2025"
ADVICE = "Create a Workflows webhook in the channel and replace the URL here."


def channel(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, path: str, family: str | None
) -> str:
    hook = make_webhook(svc, workspace.id, path.strip("/").replace("/", "-"), sink.url(path))
    make_subscription(svc, workspace.id, hook, "issue_created")
    if family is not None:
        with svc.db.transaction() as session:
            session.execute(
                update(TeamsWebhook).where(TeamsWebhook.id == hook).values(url_family=family)
            )
    return hook


def webhook(svc: Services, hook: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        found = session.get(TeamsWebhook, hook)
        assert found is not None
        return found


def attempt_messages(svc: Services) -> list[str]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(DeliveryAttempt.message)))


@pytest.mark.parametrize("status", [404, 410, 401])
def test_a_refused_logic_apps_url_names_the_retirement(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, status: int
) -> None:
    hook = channel(svc, workspace, sink, "/workflows/retired", "logic_apps")
    sink.set_default("/workflows/retired", Answer(status, '{"error":{"code":"NotFound"}}'))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "dead_letter"
    assert delivery.last_status_code == status
    last_error = delivery.last_error or ""
    assert last_error.startswith(f"Teams answered {status}: ")
    assert "logic.azure.com" in last_error
    assert RETIREMENT in last_error
    assert last_error.endswith(ADVICE)
    saved = webhook(svc, hook)
    assert saved.last_failure_reason == last_error
    assert attempt_messages(svc) == [last_error]


@pytest.mark.parametrize(
    ("family", "status", "expected"),
    [
        (None, 404, "removed from the Teams channel"),  # a loopback stand-in: as before
        ("power_platform", 404, "removed from the Teams channel"),
        ("connector", 410, "removed from the Teams channel"),
        ("logic_apps", 400, "Teams refused the message (HTTP 400)"),  # not a retirement answer
    ],
)
def test_other_refusals_keep_their_own_reason(
    svc: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    family: str | None,
    status: int,
    expected: str,
) -> None:
    channel(svc, workspace, sink, "/workflows/other", family)
    sink.set_default("/workflows/other", Answer(status, ""))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "dead_letter"
    assert expected in (delivery.last_error or "")
    assert "30 November 2025" not in (delivery.last_error or "")


def test_a_temporary_problem_of_a_retired_url_is_retried_with_the_usual_reason(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/slow", "logic_apps")
    sink.set_default("/workflows/slow", Answer(503, ""))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"
    assert "temporary problem" in (delivery.last_error or "")
