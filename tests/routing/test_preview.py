"""Preview a subscription before saving it: what the settings would have sent lately.

The central check: for random settings, the preview over the fixture payloads (captured and
synthetic, stored through the real intake) names exactly the events that the same settings,
saved, then send cards for when the same payloads arrive again. The rest checks the API:
its answer, the 7-day window, the reasons, security levels, and that nothing is saved.
"""

from __future__ import annotations

import copy
import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from tests.jira.support import payload, payload_names, post_signed
from tests.routing.support import VOCABULARY
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user, make_workspace
from tests.support.teams import make_webhook
from ticketmate.models import (
    AuditEntry,
    IntegrationDelivery,
    IssueSecurity,
    JiraEventRecord,
    TeamsSubscription,
)
from ticketmate.routing import preview as preview_module
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

SYNTHETIC = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads-synthetic"
MM = "mattermost_mattermost-plugin-jira__"
NO_RESTRICTED = "the subscription does not include restricted issues"


def synthetic_names() -> list[str]:
    return sorted(path.name for path in SYNTHETIC.glob("*.json"))


def fixture_bodies() -> list[tuple[str, dict[str, Any]]]:
    """(name, body) of every captured and synthetic payload, in one fixed order."""
    bodies = [(name, payload(name)) for name in payload_names()]
    bodies += [
        (f"synthetic/{name}", json.loads((SYNTHETIC / name).read_bytes()))
        for name in synthetic_names()
    ]
    return bodies


def renumbered(body: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The same payload with another comment id (the same one for every payload that had the
    same id, so two reports of one comment stay two reports of one comment): not a second
    report of a comment already stored."""
    comment = body.get("comment")
    if not isinstance(comment, dict) or "id" not in comment:
        return body
    made = copy.deepcopy(body)
    old = str(comment["id"])
    made["comment"]["id"] = f"{old}{suffix}"
    self_url = made["comment"].get("self")
    if isinstance(self_url, str) and self_url.endswith(f"/{old}"):
        made["comment"]["self"] = self_url[: -len(old)] + f"{old}{suffix}"
    return made


_posted = itertools.count()


def post_all(
    client: TestClient, workspace: MadeWorkspace, bodies: list[tuple[str, dict[str, Any]]]
) -> dict[str, str]:
    """Post every body through the signed intake; event id → fixture name."""
    posted = {}
    for name, body in bodies:
        answer = post_signed(client, workspace, body, identifier=f"preview-{next(_posted)}")
        assert answer.status_code == 202, (name, answer.text)
        posted[answer.json()["event_id"]] = name
    return posted


def delivered(svc: Services, event_ids: list[str]) -> set[str]:
    with svc.db.transaction() as session:
        return set(
            session.scalars(
                select(IntegrationDelivery.event_id).where(
                    IntegrationDelivery.event_id.in_(event_ids)
                )
            )
        )


def preview_of(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser, body: dict[str, Any]
) -> dict[str, Any]:
    answer = client.post(
        f"/api/v1/workspaces/{workspace.slug}/teams/subscriptions/preview",
        json=body,
        headers=bearer(admin),
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


# -- preview and reality cannot disagree ------------------------------------------------------

EVENT_TYPES = st.sampled_from(
    [
        "issue_created",
        "issue_updated",
        "status_changed",
        "comment_created",
        "issue_deleted",
        "issue_assigned",
        "comment_updated",
        "comment_deleted",
        "issue_created",
        "comment_created",
    ]
)
LEVELS = (
    st.none()
    | st.just("any")
    | st.lists(st.sampled_from(["Staff only", "staff ONLY", "Developers"]), min_size=1, max_size=2)
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(list(VOCABULARY)), max_size=2, unique=True))
    filters: dict[str, Any] = {
        name: draw(st.lists(st.sampled_from(VOCABULARY[name]), min_size=1, max_size=3))
        for name in names
    }
    levels = draw(LEVELS)
    if levels is not None:
        filters["security_levels"] = levels
    return {
        "event_type": draw(EVENT_TYPES),
        "enabled": draw(st.integers(0, 9)) > 0,
        "filters": filters,
    }


def test_the_preview_names_exactly_the_events_the_saved_subscription_then_sends(
    svc: Services, client: TestClient
) -> None:
    fixtures = fixture_bodies()
    examples = itertools.count()
    seen = {"matched": 0, "refused": 0, "security": 0}

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(body=bodies(), withhold_unknown=st.booleans())
    # Besides the random ones: the opt-ins to restricted issues, where the events are.
    @example(
        body={"event_type": "issue_updated", "filters": {"security_levels": ["staff ONLY"]}},
        withhold_unknown=False,
    )
    @example(
        body={"event_type": "comment_created", "filters": {"security_levels": "any"}},
        withhold_unknown=True,
    )
    @example(body={"event_type": "comment_created", "filters": {}}, withhold_unknown=True)
    @example(
        body={"event_type": "issue_created", "filters": {"projects": ["TES", "KT"]}},
        withhold_unknown=False,
    )
    def check(body: dict[str, Any], withhold_unknown: bool) -> None:
        # A fresh workspace per example: its own events, subscriptions and issue levels.
        n = next(examples)
        workspace = make_workspace(svc, f"prev{n}")
        admin = make_user(svc, f"admin{n}@acme.test", {workspace.slug: "admin"})
        hook = make_webhook(svc, workspace.id, "#preview", "http://127.0.0.1:9/workflows/preview")
        if withhold_unknown:
            answer = client.put(
                f"/api/v1/workspaces/{workspace.slug}/jira/security",
                json={"withhold_unknown_levels": True},
                headers=bearer(admin),
            )
            assert answer.status_code == 200, answer.text
        body = {**body, "webhook_id": hook}

        first = post_all(client, workspace, fixtures)
        # Every matching event and every reason, not the first 20 and 10 a person is shown.
        with (
            mock.patch.object(preview_module, "MATCHING_SHOWN", 1000),
            mock.patch.object(preview_module, "REASONS_SHOWN", 1000),
        ):
            shown = preview_of(client, workspace, admin, body)
        previewed = {first[item["event_id"]] for item in shown["matching"]}
        assert shown["cards"] == len(previewed)
        assert shown["cards"] + sum(r["events"] for r in shown["reasons"]) == shown["considered"]

        answer = client.post(
            f"/api/v1/workspaces/{workspace.slug}/teams/subscriptions",
            json=body,
            headers=bearer(admin),
        )
        assert answer.status_code == 201, answer.text
        # The second round starts from the issue levels the first one started from (none), so
        # every event is read as it was the first time; only the subscription differs.
        with svc.db.transaction() as session:
            session.execute(delete(IssueSecurity).where(IssueSecurity.workspace_id == workspace.id))
        again = [(name, renumbered(b, "90909")) for name, b in fixtures]
        second = post_all(client, workspace, again)
        sent = {second[event_id] for event_id in delivered(svc, list(second))}

        assert sent == previewed, (body, withhold_unknown)
        seen["matched"] += bool(sent)
        seen["refused"] += bool(shown["reasons"])
        seen["security"] += any("security level" in r["reason"] for r in shown["reasons"])

    check()
    # The examples covered both sides of the question, and the security rule.
    assert all(seen.values()), seen


# -- the API ----------------------------------------------------------------------------------


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


@pytest.fixture
def hook(svc: Services, workspace: MadeWorkspace) -> str:
    return make_webhook(svc, workspace.id, "#demo", "http://127.0.0.1:9/workflows/demo")


PREVIEW = "/api/v1/workspaces/acme/teams/subscriptions/preview"


def post_fixture(client: TestClient, workspace: MadeWorkspace, name: str) -> str:
    body = payload(name) if "/" not in name else json.loads((SYNTHETIC / name[10:]).read_bytes())
    answer = post_signed(client, workspace, body, identifier=f"preview-{next(_posted)}")
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


def test_the_answer_counts_lists_and_explains(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    created = post_fixture(client, workspace, f"{MM}issue-created.json")
    post_fixture(client, workspace, f"{MM}cloud-issue-created-many-fields.json")
    post_fixture(client, workspace, f"{MM}issue-updated-labels.json")
    body = {"event_type": "issue_created", "webhook_id": hook, "filters": {"projects": ["TES"]}}
    answer = client.post(PREVIEW, json=body, headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert set(shown) == {
        "cards",
        "considered",
        "since",
        "capped",
        "matching",
        "reasons",
        "note",
    }
    assert shown["considered"] == 3
    assert shown["capped"] is False
    assert shown["since"].endswith("Z")
    assert "not applied" in shown["note"]
    with svc.db.transaction() as session:
        record = session.get(JiraEventRecord, created)
        assert record is not None
        project = record.envelope["issue"]["project_key"]
    if project == "TES":
        assert created in {m["event_id"] for m in shown["matching"]}
    for item in shown["matching"]:
        assert set(item) == {"event_id", "received_at", "issue_key", "title"}
        assert item["title"]
        assert item["received_at"].endswith("Z")
    assert shown["cards"] == len(shown["matching"])
    assert sum(r["events"] for r in shown["reasons"]) == 3 - shown["cards"]
    assert any(r["reason"].startswith("listens for issue_created") for r in shown["reasons"])


def test_reasons_are_ranked_by_how_many_events_they_explain(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    # Three issue-created events of project TES (or whatever the fixture's project is) and one
    # issue-updated event: the project reason explains three, the event type one.
    for _ in range(3):
        body = payload(f"{MM}issue-created.json")
        answer = post_signed(client, workspace, body, identifier=f"preview-{next(_posted)}")
        assert answer.status_code == 202
    post_fixture(client, workspace, f"{MM}issue-updated-labels.json")
    body = {
        "event_type": "issue_created",
        "webhook_id": hook,
        "filters": {"projects": ["NOPE"]},
    }
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["cards"] == 0
    assert shown["matching"] == []
    assert [r["events"] for r in shown["reasons"]] == [3, 1]
    assert "not in [NOPE]" in shown["reasons"][0]["reason"]
    assert shown["reasons"][1]["reason"].startswith("listens for issue_created")


def test_events_older_than_seven_days_are_not_counted(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    old = post_fixture(client, workspace, f"{MM}issue-created.json")
    recent = post_fixture(client, workspace, f"{MM}issue-created-no-description.json")
    with svc.db.transaction() as session:
        session.execute(
            update(JiraEventRecord)
            .where(JiraEventRecord.id == old)
            .values(received_at=utcnow() - timedelta(days=7, minutes=1))
        )
    body = {"event_type": "issue_created", "webhook_id": hook}
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["considered"] == 1
    assert [m["event_id"] for m in shown["matching"]] == [recent]


def test_a_shorter_retention_period_shortens_the_window(
    svc: Services, workspace: MadeWorkspace, hook: str
) -> None:
    now = utcnow()
    assert preview_module.preview_window(now, 30) == now - timedelta(days=7)
    assert preview_module.preview_window(now, 2) == now - timedelta(days=2)


def test_a_restricted_issue_shows_the_security_reason_unless_the_level_is_allowed(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    restricted = post_fixture(client, workspace, "synthetic/cloud-issue-created-restricted.json")
    body: dict[str, Any] = {"event_type": "issue_created", "webhook_id": hook}
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["cards"] == 0
    assert shown["reasons"] == [
        {"reason": f"issue KT-22 has the security level 'Staff only'; {NO_RESTRICTED}", "events": 1}
    ]
    for levels in (["staff ONLY"], "any"):
        body["filters"] = {"security_levels": levels}
        shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
        assert [m["event_id"] for m in shown["matching"]] == [restricted], levels
    body["filters"] = {"security_levels": ["Developers"]}
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["cards"] == 0
    assert "includes only [Developers]" in shown["reasons"][0]["reason"]


def test_comments_of_issues_never_seen_follow_the_workspace_setting_as_it_is_now(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    comment = post_fixture(
        client, workspace, "synthetic/cloud-comment-created-on-restricted-issue.json"
    )
    body: dict[str, Any] = {"event_type": "comment_created", "webhook_id": hook}
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert [m["event_id"] for m in shown["matching"]] == [comment]
    answer = client.put(
        "/api/v1/workspaces/acme/jira/security",
        json={"withhold_unknown_levels": True},
        headers=bearer(admin),
    )
    assert answer.status_code == 200
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["cards"] == 0
    assert "the workspace withholds such comments" in shown["reasons"][0]["reason"]
    body["filters"] = {"security_levels": "any"}
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert shown["cards"] == 1


def test_a_webhook_of_another_workspace_is_refused_like_on_create(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    other = make_workspace(svc, "other")
    foreign = make_webhook(svc, other.id, "#theirs", "http://127.0.0.1:9/workflows/theirs")
    body = {"event_type": "issue_created", "webhook_id": foreign}
    previewed = client.post(PREVIEW, json=body, headers=bearer(admin))
    created = client.post(
        "/api/v1/workspaces/acme/teams/subscriptions", json=body, headers=bearer(admin)
    )
    assert previewed.status_code == created.status_code == 422
    assert previewed.json() == created.json()
    assert previewed.json()["error"]["code"] == "validation_error"


def test_only_workspace_admins_may_preview(
    svc: Services, client: TestClient, workspace: MadeWorkspace, hook: str
) -> None:
    member = make_user(svc, "member@acme.test", {workspace.slug: "member"})
    body = {"event_type": "issue_created", "webhook_id": hook}
    assert client.post(PREVIEW, json=body).status_code == 401
    answer = client.post(PREVIEW, json=body, headers=bearer(member))
    assert answer.status_code == 403, answer.text


def test_a_preview_saves_and_audits_nothing(
    svc: Services, client: TestClient, workspace: MadeWorkspace, admin: MadeUser, hook: str
) -> None:
    post_fixture(client, workspace, f"{MM}issue-created.json")

    def counts() -> tuple[int, int, int]:
        with svc.db.transaction() as session:
            return (
                session.scalar(select(func.count()).select_from(TeamsSubscription)) or 0,
                session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
                session.scalar(select(func.count()).select_from(IntegrationDelivery)) or 0,
            )

    before = counts()
    body = {"event_type": "issue_created", "webhook_id": hook, "filters": {"labels": ["x"]}}
    assert client.post(PREVIEW, json=body, headers=bearer(admin)).status_code == 200
    assert counts() == before


def test_a_preview_reads_at_most_max_events_and_says_so(
    svc: Services,
    client: TestClient,
    workspace: MadeWorkspace,
    admin: MadeUser,
    hook: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [post_fixture(client, workspace, f"{MM}issue-created.json") for _ in range(4)]
    body = {"event_type": "issue_created", "webhook_id": hook}
    monkeypatch.setattr(preview_module, "MAX_EVENTS", 4)
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert (shown["considered"], shown["capped"]) == (4, False)
    monkeypatch.setattr(preview_module, "MAX_EVENTS", 3)
    monkeypatch.setattr(preview_module, "READ_BATCH", 2)
    shown = client.post(PREVIEW, json=body, headers=bearer(admin)).json()
    assert (shown["considered"], shown["capped"]) == (3, True)
    # The newest are the ones read, newest first.
    assert [m["event_id"] for m in shown["matching"]] == ids[:0:-1]
