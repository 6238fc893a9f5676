"""Security > Audit Log: labels beside stored names, filters, pages, and Verify integrity."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import select, update

from tests.support.teams import make_subscription, make_webhook
from tests.web.conftest import Browser, People, htmx
from ticketmate.audit.service import Actor, record
from ticketmate.models import AuditEntry
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

AUDIT = "/w/acme/security/audit-log"
HOOK_URL = "http://127.0.0.1:9/workflows/eng"


def actions_shown(page: str) -> list[str]:
    return re.findall(r"<code>([a-z_.]+)</code></td>", page)


def test_entries_show_time_actor_action_target_ip_and_details(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    make_subscription(svc, people.acme.id, hook, "issue_created", projects=["DEMO"])
    page = admin.client.get(AUDIT).text
    for header in ("Time", "Actor", "Action", "Target", "IP", "Details"):
        assert f"<th>{header}</th>" in page
    assert "Webhook created · <code>teams.webhook.created</code>" in page
    assert "Subscription created · <code>teams.subscription.created</code>" in page
    assert "Signed in · <code>auth.signin.succeeded</code>" in page
    assert "Webhook “#eng”" in html.unescape(page)
    assert '<small class="muted">filters:</small> projects: DEMO</div>' in page
    assert "<td>testclient</td>" in page  # the sign-in's address, as the server saw it
    assert "/workflows/eng" not in page  # the URL is a secret, in the log too
    assert actions_shown(page)[0] == "teams.subscription.created"  # newest first


def test_filters_by_action_actor_and_time(admin: Browser, svc: Services, people: People) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    with svc.db.transaction() as session:
        record(
            session,
            workspace_id=people.acme.id,
            actor=Actor("system"),
            action="teams.webhook.auto_disabled",
            at=utcnow() - timedelta(days=3),
        )
    by_action = admin.client.get(f"{AUDIT}?action=teams.webhook.created").text
    assert actions_shown(by_action) == ["teams.webhook.created"]
    by_group = admin.client.get(f"{AUDIT}?action=teams.*").text
    assert set(actions_shown(by_group)) == {"teams.webhook.created", "teams.webhook.auto_disabled"}
    by_actor = admin.client.get(f"{AUDIT}?actor=system").text
    assert actions_shown(by_actor) == ["teams.webhook.auto_disabled"]
    assert "<td>System</td>" in by_actor
    recent = admin.client.get(f"{AUDIT}?time=24h").text
    assert "teams.webhook.auto_disabled" not in actions_shown(recent)
    day = (utcnow() - timedelta(days=3)).date().isoformat()
    custom = admin.client.get(f"{AUDIT}?time=custom&since={day}&until={day}").text
    assert actions_shown(custom) == ["teams.webhook.auto_disabled"]
    # Dates typed without choosing "Between the dates below" count all the same.
    dates_only = admin.client.get(f"{AUDIT}?since={day}&until={day}").text
    assert actions_shown(dates_only) == ["teams.webhook.auto_disabled"]
    assert "No entries match these filters." in admin.client.get(f"{AUDIT}?actor=nobody@x.y").text


def test_pages_of_fifty(admin: Browser, svc: Services, people: People) -> None:
    with svc.db.transaction() as session:
        for _ in range(60):
            record(
                session, workspace_id=people.acme.id, actor=Actor("system"), action="keys.rotated"
            )
    first = admin.client.get(f"{AUDIT}?action=keys.rotated").text
    assert len(actions_shown(first)) == 50
    found = re.search(r'<a href="([^"]+)">Next page →</a>', first)
    assert found
    second = admin.client.get(html.unescape(found.group(1))).text
    assert len(actions_shown(second)) == 10
    assert "Encryption keys rotated" in second


def test_verify_integrity(admin: Browser, svc: Services, people: People) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    page = admin.client.get(AUDIT).text
    assert ">Verify integrity</button>" in page
    ok = htmx(admin, "GET", f"{AUDIT}/verify")
    assert '<div id="verify-result" role="status" class="verify ok">' in ok.text
    assert "Integrity OK." in ok.text
    assert "All 2 entries" in ok.text
    # Someone edits a row behind the application's back: the check names it.
    with svc.db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "teams.webhook.created")
        ).one()
        session.execute(
            update(AuditEntry).where(AuditEntry.id == entry.id).values(actor_email="mallory@x.y")
        )
        tampered = entry.id
    without_js = admin.client.get(f"{AUDIT}/verify").text
    assert "Integrity check failed." in without_js
    assert f"<code>{tampered}</code>" in without_js
    assert "its content does not match its hash" in without_js
    assert "<h1>Audit Log</h1>" in without_js
