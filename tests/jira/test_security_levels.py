"""Issue security levels: an issue Jira restricts is never posted unless a subscription says so.

Through the real intake (signed requests, the real writer and router, SQLite and PostgreSQL)
with the synthetic fixtures of tests/fixtures/jira-payloads-synthetic (made here: no capture
has a level), and read back through the API a person uses.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jira.support import payload, post_signed
from tests.support.factories import MadeUser, MadeWorkspace, bearer
from tests.support.teams import make_subscription, make_webhook
from ticketmate.db import AsyncDatabase
from ticketmate.jira.events import JiraEvent, SecurityLevel
from ticketmate.jira.security import Sighted, resolve_levels
from ticketmate.jira.transform import Transformed, transform
from ticketmate.models import AuditEntry, IntegrationDelivery, IssueSecurity
from ticketmate.routing.filters import security_refusal
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

SYNTHETIC = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads-synthetic"
MM = "mattermost_mattermost-plugin-jira__"
EVENTS = "/api/v1/workspaces/acme/jira/events"
SUBSCRIPTIONS = "/api/v1/workspaces/acme/teams/subscriptions"
NO_RESTRICTED = "the subscription does not include restricted issues"


def synthetic(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SYNTHETIC / f"{name}.json").read_bytes())
    return loaded


def envelope_of(body: dict[str, Any]) -> JiraEvent:
    outcome = transform(body)
    assert isinstance(outcome, Transformed), outcome
    return outcome.envelope


# -- reading the level from Jira's payloads ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "level", "source", "issue_id"),
    [
        ("cloud-issue-created-restricted", "Staff only", "payload", "10509"),
        ("cloud-issue-updated-security-set", "Staff only", "payload", "10040"),
        ("cloud-issue-updated-security-removed", None, "payload", "10040"),
        ("cloud-comment-created-on-restricted-issue", None, "unknown", "10040"),
        ("server-issue-updated-security-level-field", "Staff only", "changelog", "10231"),
        ("server-comment-created-on-restricted-issue", None, "unknown", "10231"),
    ],
)
def test_the_level_and_how_it_is_known_are_read_from_each_kind_of_payload(
    name: str, level: str | None, source: str, issue_id: str
) -> None:
    envelope = envelope_of(synthetic(name))
    assert (envelope.security.name if envelope.security else None) == level
    assert envelope.security_source == source
    assert envelope.issue_id == issue_id


def test_a_restricted_issue_keeps_the_levels_id_and_description() -> None:
    envelope = envelope_of(synthetic("cloud-issue-created-restricted"))
    assert envelope.security == SecurityLevel(
        id="10100", name="Staff only", description="Visible to the staff group only"
    )
    assert envelope.as_json()["security"]["name"] == "Staff only"


def test_captured_issue_events_are_unrestricted_and_captured_comments_unknown() -> None:
    issue = envelope_of(payload(f"{MM}issue-updated-labels.json"))
    assert (issue.security, issue.security_source) == (None, "payload")
    # Server's issue_commented report carries the full issue: known, here unrestricted.
    commented = envelope_of(payload(f"{MM}server-issue-updated-issue-commented.json"))
    assert (commented.security, commented.security_source) == (None, "payload")
    for name in ("cloud-comment-created.json", "server-comment-created.json"):
        comment = envelope_of(payload(f"{MM}{name}"))
        assert (comment.security, comment.security_source) == (None, "unknown"), name
    server = envelope_of(payload(f"{MM}server-comment-created.json"))
    assert server.issue is None
    assert server.issue_id == "10013"  # from the comment's URL


def test_a_security_field_that_is_not_an_object_is_refused_not_posted() -> None:
    body = synthetic("cloud-issue-created-restricted")
    body["issue"]["fields"]["security"] = "Staff only"
    outcome = transform(body)
    assert outcome.status == "rejected"


# -- the rule ----------------------------------------------------------------------------------


def _restricted(**update: Any) -> JiraEvent:
    return envelope_of(synthetic("cloud-issue-created-restricted")).model_copy(update=update)


def test_the_reasons_say_which_rule_applied() -> None:
    event = _restricted()
    assert security_refusal(event, None, withhold_unknown=False) == (
        f"issue KT-22 has the security level 'Staff only'; {NO_RESTRICTED}"
    )
    assert security_refusal(event, ["Developers"], withhold_unknown=False) == (
        "issue KT-22 has the security level 'Staff only'; the subscription includes only "
        "[Developers]"
    )
    assert security_refusal(event, [" staff ONLY "], withhold_unknown=False) is None
    assert security_refusal(event, ["*"], withhold_unknown=False) is None
    moved = envelope_of(synthetic("cloud-issue-updated-security-set"))
    assert security_refusal(moved, [], withhold_unknown=False) == (
        "issue TES-41 has the security level 'Staff only' (it moved into that level in this "
        f"change); {NO_RESTRICTED}"
    )
    remembered = _restricted(security_source="remembered")
    assert "as an earlier event of the issue said" in (
        security_refusal(remembered, [], withhold_unknown=False) or ""
    )
    unknown = envelope_of(synthetic("cloud-comment-created-on-restricted-issue"))
    assert security_refusal(unknown, [], withhold_unknown=False) is None
    assert security_refusal(unknown, ["Staff only"], withhold_unknown=True) == (
        "the security level of issue TES-41 is not known (Jira sent none with this comment "
        "and no earlier event of the issue showed one); the workspace withholds such comments"
    )
    assert security_refusal(unknown, ["*"], withhold_unknown=True) is None
    # An unrestricted issue is never held back by the rule.
    removed = envelope_of(synthetic("cloud-issue-updated-security-removed"))
    assert security_refusal(removed, [], withhold_unknown=True) is None


# -- through the intake ------------------------------------------------------------------------


class Channels:
    """Four channels, one subscription each, for every event type used here."""

    def __init__(self, svc: Services, workspace: MadeWorkspace) -> None:
        self.svc, self.workspace = svc, workspace
        self.hooks: dict[str, str] = {}
        self.subs: dict[str, list[str]] = {}
        choices: dict[str, dict[str, Any]] = {
            "#all": {},
            "#staff": {"security_levels": ["staff only"]},
            "#any": {"security_levels": "any"},
            "#devs": {"security_levels": ["Developers"]},
        }
        for channel, filters in choices.items():
            hook = make_webhook(
                svc, workspace.id, channel, f"http://127.0.0.1:9/workflows/{channel[1:]}"
            )
            self.hooks[channel] = hook
            self.subs[channel] = [
                make_subscription(svc, workspace.id, hook, event_type, **filters)
                for event_type in ("issue_created", "issue_updated", "comment_created")
            ]
        self.sent = 0

    def post(self, client: TestClient, body: dict[str, Any]) -> str:
        self.sent += 1
        answer = post_signed(client, self.workspace, body, identifier=f"sec-{self.sent}")
        assert answer.status_code == 202, answer.text
        event_id: str = answer.json()["event_id"]
        return event_id

    def reached(self, event_id: str) -> set[str]:
        with self.svc.db.transaction() as session:
            return set(
                session.scalars(
                    select(IntegrationDelivery.channel_name).where(
                        IntegrationDelivery.event_id == event_id
                    )
                )
            )

    def reasons(self, client: TestClient, admin: MadeUser, event_id: str) -> dict[str, str | None]:
        """channel → why its subscription for this event did not take it (None: it did)."""
        answer = client.get(
            f"{EVENTS}/{event_id}/explanations", params={"limit": 50}, headers=bearer(admin)
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, str | None] = {}
        for item in answer.json()["items"]:
            if item["reason"] is None or not item["reason"].startswith("listens for"):
                found[item["channel_name"]] = item["reason"]
        return found


def comment_on(body: dict[str, Any], comment_id: str) -> dict[str, Any]:
    """Another comment of the same issue (a new comment id: not a second report of one)."""
    made = copy.deepcopy(body)
    made["comment"]["id"] = comment_id
    made["comment"]["self"] = made["comment"]["self"].rsplit("/", 1)[0] + f"/{comment_id}"
    return made


@pytest.fixture
def channels(svc: Services, workspace: MadeWorkspace) -> Channels:
    return Channels(svc, workspace)


def test_a_restricted_issue_goes_only_where_its_level_is_allowed(
    client: TestClient, channels: Channels, admin: MadeUser
) -> None:
    event_id = channels.post(client, synthetic("cloud-issue-created-restricted"))
    assert channels.reached(event_id) == {"#staff", "#any"}
    reasons = channels.reasons(client, admin, event_id)
    assert reasons == {
        "#all": f"issue KT-22 has the security level 'Staff only'; {NO_RESTRICTED}",
        "#staff": None,
        "#any": None,
        "#devs": "issue KT-22 has the security level 'Staff only'; the subscription includes "
        "only [Developers]",
    }
    detail = client.get(f"{EVENTS}/{event_id}", headers=bearer(admin)).json()
    assert detail["envelope"]["security"]["name"] == "Staff only"
    assert detail["envelope"]["security_source"] == "payload"


def test_a_cloud_comment_takes_the_level_its_issue_was_last_seen_with(
    client: TestClient, channels: Channels, admin: MadeUser
) -> None:
    comment = synthetic("cloud-comment-created-on-restricted-issue")
    moved_in = channels.post(client, synthetic("cloud-issue-updated-security-set"))
    assert channels.reached(moved_in) == {"#staff", "#any"}

    restricted = channels.post(client, comment_on(comment, "20001"))
    assert channels.reached(restricted) == {"#staff", "#any"}
    reasons = channels.reasons(client, admin, restricted)
    assert reasons["#all"] == (
        "issue TES-41 has the security level 'Staff only' (as an earlier event of the issue "
        f"said; Jira sent none with this one); {NO_RESTRICTED}"
    )
    detail = client.get(f"{EVENTS}/{restricted}", headers=bearer(admin)).json()
    assert detail["envelope"]["security_source"] == "remembered"
    assert any("an earlier event of the issue showed" in n for n in detail["envelope"]["notes"])

    # Moved out of the level: posted everywhere again, and so are its comments.
    moved_out = channels.post(client, synthetic("cloud-issue-updated-security-removed"))
    assert channels.reached(moved_out) == {"#all", "#staff", "#any", "#devs"}
    open_again = channels.post(client, comment_on(comment, "20002"))
    assert channels.reached(open_again) == {"#all", "#staff", "#any", "#devs"}


def test_a_late_copy_of_an_older_event_does_not_undo_a_newer_level(
    client: TestClient, channels: Channels, svc: Services
) -> None:
    moved_in = synthetic("cloud-issue-updated-security-set")
    older = synthetic("cloud-issue-updated-security-removed")
    older["timestamp"] = moved_in["timestamp"] - 60_000  # happened before, arrives after
    channels.post(client, moved_in)
    channels.post(client, older)
    with svc.db.transaction() as session:
        row = session.scalars(select(IssueSecurity).where(IssueSecurity.issue_id == "10040")).one()
        assert (row.level_name, row.level_id, row.issue_key) == ("Staff only", "10100", "TES-41")
    comment = channels.post(
        client, comment_on(synthetic("cloud-comment-created-on-restricted-issue"), "20003")
    )
    assert channels.reached(comment) == {"#staff", "#any"}


def test_a_server_comment_without_an_issue_takes_the_level_by_the_issues_id(
    client: TestClient, channels: Channels, admin: MadeUser
) -> None:
    changed = channels.post(client, synthetic("server-issue-updated-security-level-field"))
    assert channels.reached(changed) == {"#staff", "#any"}
    comment = channels.post(client, synthetic("server-comment-created-on-restricted-issue"))
    assert channels.reached(comment) == {"#staff", "#any"}
    assert channels.reasons(client, admin, comment)["#all"] == (
        "issue id 10231 has the security level 'Staff only' (as an earlier event of the issue "
        f"said; Jira sent none with this one); {NO_RESTRICTED}"
    )


def test_comments_of_issues_never_seen_follow_the_workspace_setting(
    client: TestClient, channels: Channels, admin: MadeUser, svc: Services
) -> None:
    comment = synthetic("cloud-comment-created-on-restricted-issue")
    posted = channels.post(client, comment_on(comment, "20004"))
    assert channels.reached(posted) == {"#all", "#staff", "#any", "#devs"}

    url = "/api/v1/workspaces/acme/jira/security"
    assert client.get(url, headers=bearer(admin)).json() == {"withhold_unknown_levels": False}
    answer = client.put(url, json={"withhold_unknown_levels": True}, headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"withhold_unknown_levels": True}
    refused = client.put(url, json={"withhold_unknown_levels": "yes"}, headers=bearer(admin))
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "validation_error"

    # The next comment is routed under the new setting at once (the index carries it).
    withheld = channels.post(client, comment_on(comment, "20005"))
    assert channels.reached(withheld) == {"#any"}
    reasons = channels.reasons(client, admin, withheld)
    unknown = (
        "the security level of issue TES-41 is not known (Jira sent none with this comment and "
        "no earlier event of the issue showed one); the workspace withholds such comments"
    )
    assert reasons == {"#all": unknown, "#staff": unknown, "#any": None, "#devs": unknown}
    with svc.db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "jira.security.updated")
        ).one()
        assert entry.details == {"withhold_unknown_levels": {"from": False, "to": True}}
    # An issue event of that issue makes its level known: the comments follow it, not the rule.
    channels.post(client, synthetic("cloud-issue-updated-security-removed"))
    known = channels.post(client, comment_on(comment, "20006"))
    assert channels.reached(known) == {"#all", "#staff", "#any", "#devs"}


def test_levels_within_one_batch_are_read_in_the_batchs_order(
    svc: Services, workspace: MadeWorkspace
) -> None:
    """Two events in one transaction: the comment after the issue event takes its level, the
    one before it does not (and the one before stays unknown, as it arrived first)."""
    comment = envelope_of(synthetic("cloud-comment-created-on-restricted-issue"))
    moved_in = envelope_of(synthetic("cloud-issue-updated-security-set"))
    now = utcnow()

    async def run() -> list[JiraEvent]:
        db = AsyncDatabase(svc.settings)
        try:
            async with db.transaction() as conn:
                return await resolve_levels(
                    conn,
                    [
                        Sighted(workspace.id, comment, now),
                        Sighted(workspace.id, moved_in, now),
                        Sighted(workspace.id, comment, now),
                    ],
                )
        finally:
            await db.dispose()

    first, middle, last = asyncio.run(run())
    assert (first.security, first.security_source) == (None, "unknown")
    assert middle is moved_in
    assert last.security is not None
    assert last.security.name == "Staff only"
    assert last.security_source == "remembered"


# -- the subscription's opt-in through the API -------------------------------------------------


def test_security_levels_are_saved_shown_validated_and_audited(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", "http://127.0.0.1:9/workflows/eng")
    body = {"event_type": "issue_created", "webhook_id": hook, "filters": {"projects": ["KT"]}}
    made = client.post(SUBSCRIPTIONS, json=body, headers=bearer(admin))
    assert made.status_code == 201, made.text
    assert made.json()["filters"]["security_levels"] == []
    subscription_id = made.json()["id"]

    for given, shown in (
        ("any", "any"),
        ([" Staff only ", "staff ONLY", "Devs"], ["Staff only", "Devs"]),
    ):
        filters = {"projects": ["KT"], "security_levels": given}
        answer = client.patch(
            f"{SUBSCRIPTIONS}/{subscription_id}", json={"filters": filters}, headers=bearer(admin)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["filters"]["security_levels"] == shown
    for bad in ("*", ["*"], "Staff only", [""]):
        filters = {"security_levels": bad}
        answer = client.patch(
            f"{SUBSCRIPTIONS}/{subscription_id}", json={"filters": filters}, headers=bearer(admin)
        )
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["code"] == "validation_error"

    with svc.db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "teams.subscription.updated")
            .order_by(AuditEntry.id)
        ).all()
        assert [e.details["security_levels"] for e in entries] == [
            {"from": [], "to": "any"},
            {"from": "any", "to": ["Staff only", "Devs"]},
        ]
    # Unchanged filters saved again are no change at all (older rows have no such entry).
    again = {"projects": ["KT"], "security_levels": ["Staff only", "Devs"]}
    client.patch(
        f"{SUBSCRIPTIONS}/{subscription_id}", json={"filters": again}, headers=bearer(admin)
    )
    with svc.db.transaction() as session:
        count = len(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "teams.subscription.updated")
            ).all()
        )
    assert count == 2
