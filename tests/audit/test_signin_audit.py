"""Sign-ins are audit-logged: in each workspace of a known user, globally for unknown e-mails."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.web import csrf_from
from tests.teams.helpers import People
from ticketmate.models import AuditEntry
from ticketmate.state import Services


def post_login(client: TestClient, email: str, password: str) -> int:
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(form.text)},
        follow_redirects=False,
    )
    return response.status_code


def signins(svc: Services) -> list[AuditEntry]:
    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.startswith("auth.signin."))
                .order_by(AuditEntry.id)
            )
        )


def test_a_known_users_signin_is_logged_in_each_of_their_workspaces(
    client: TestClient, svc: Services, people: People
) -> None:
    assert post_login(client, "Admin@Acme.test", people.admin.password) == 303
    entries = signins(svc)
    assert {e.workspace_id for e in entries} == {people.acme.id, people.globex.id}
    for entry in entries:
        assert entry.action == "auth.signin.succeeded"
        assert (entry.actor_id, entry.actor_email) == (people.admin.id, "admin@acme.test")
        assert (entry.target_type, entry.target_id) == ("user", people.admin.id)
        assert entry.ip == "testclient"
        assert entry.details == {}


def test_failed_and_locked_signins_never_hold_the_password(
    client: TestClient, svc: Services, people: People
) -> None:
    wrong = "not-the-right-password-123"
    statuses = [post_login(client, people.member.email, wrong) for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    entries = signins(svc)
    assert len(entries) == 6
    assert {e.workspace_id for e in entries} == {people.acme.id}
    assert {e.action for e in entries} == {"auth.signin.failed"}
    assert [e.details["reason"] for e in entries] == ["wrong_email_or_password"] * 4 + [
        "locked"
    ] * 2
    assert {e.actor_id for e in entries} == {people.member.id}
    with svc.db.transaction() as session:
        for entry in session.scalars(select(AuditEntry)):
            assert wrong not in str(
                [entry.details, entry.actor_email, entry.user_agent, entry.target_id]
            )


def test_an_unknown_email_goes_to_the_global_chain(
    client: TestClient, svc: Services, people: People
) -> None:
    assert post_login(client, "Nobody@Example.com", "whatever-password") == 401
    # A password typed into the e-mail field is not kept as an e-mail.
    assert post_login(client, "hunter2-typed-here", "x") == 401
    first, second = signins(svc)
    assert (first.workspace_id, first.actor_id, first.actor_email) == (
        None,
        None,
        "nobody@example.com",
    )
    assert second.actor_email is None
    assert second.workspace_id is None
    assert "hunter2" not in str(second.details)
    from ticketmate.audit.service import verify_chain

    with svc.db.transaction() as session:
        assert verify_chain(session, None).ok
