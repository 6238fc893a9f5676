"""`ticketmate audit verify`: "ok" and exit 0, or the first broken entry named and exit 1."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select, update

from tests.support.processes import cli_env, run_cli
from tests.teams.helpers import People
from ticketmate.audit.service import SYSTEM, Actor, record, verify_chain
from ticketmate.models import AuditEntry
from ticketmate.state import Services

ADA = Actor("user", None, "ada@acme.test")


def fill(svc: Services, workspace_id: str | None, count: int) -> list[str]:
    with svc.db.transaction() as session:
        return [
            record(
                session,
                workspace_id=workspace_id,
                actor=ADA if n % 2 else SYSTEM,
                action="teams.webhook.updated",
                target_type="teams_webhook",
                target_id=f"w{n}",
                details={"enabled": {"from": True, "to": False}, "n": n},
            ).id
            for n in range(count)
        ]


def test_verify_from_the_command_line(
    svc: Services, people: People, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url)
    acme_ids = fill(svc, people.acme.id, 4)
    fill(svc, people.globex.id, 2)
    fill(svc, None, 2)

    intact = run_cli(["audit", "verify"], env, tmp_path)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == "ok"
    assert "acme: 4 entries checked, intact" in intact.stderr
    assert "(no workspace): 2 entries checked, intact" in intact.stderr

    # Someone edits the third acme entry directly in the database.
    with svc.db.transaction() as session:
        session.execute(
            update(AuditEntry).where(AuditEntry.id == acme_ids[2]).values(actor_email="x@y.z")
        )
    broken = run_cli(["audit", "verify"], env, tmp_path)
    assert broken.returncode == 1
    assert f"broken: workspace acme, entry {acme_ids[2]}" in broken.stdout
    assert "does not match its hash" in broken.stdout
    assert broken.stderr.strip().endswith("error: the audit log is broken in 1 chain(s)")

    only_globex = run_cli(["audit", "verify", "--workspace", "globex"], env, tmp_path)
    assert (only_globex.returncode, only_globex.stdout.strip()) == (0, "ok")
    missing = run_cli(["audit", "verify", "--workspace", "nope"], env, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: there is no workspace 'nope'"


def test_a_removed_entry_breaks_the_chain(svc: Services, people: People) -> None:
    ids = fill(svc, people.acme.id, 3)
    with svc.db.transaction() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.id == ids[1]))
        report = verify_chain(session, people.acme.id)
    assert (report.ok, report.broken_entry_id, report.checked) == (False, ids[2], 1)
    assert report.problem == "entry 2 is missing"


def test_a_rewritten_hash_still_breaks_the_link(svc: Services, people: People) -> None:
    from ticketmate.audit.service import _hash

    ids = fill(svc, people.acme.id, 3)
    with svc.db.transaction() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.id == ids[0])).one()
        entry.details = {"forged": True}
        entry.hash = _hash(entry)  # a careful forger recomputes the hash…
    with svc.db.transaction() as session:
        report = verify_chain(session, people.acme.id)
    assert (report.ok, report.broken_entry_id) == (False, ids[1])  # …the next link gives it away
    assert report.problem == "it does not link to the entry before it"
